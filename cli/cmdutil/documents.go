package cmdutil

// Every --json document zennet prints, and the files it writes in the same
// envelope (run.json, provider.json): their kinds and the types of their
// data. A kind is a lowercase noun, its words joined by '-'; the data's
// fields are snake_case. docs/user-guide.md lists them; documents_test.go
// holds a golden file per kind, so that a change to any is seen.

import (
	"time"

	"github.com/zennet/zennet/control"
	"github.com/zennet/zennet/market"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/pricing"
	"github.com/zennet/zennet/renter"
	"github.com/zennet/zennet/session"
)

// Kind names a document's data type in its envelope.
type Kind string

// The kinds of documents.
const (
	KindHosts              Kind = "hosts"               // zennet -n: the rented hosts (HostsDoc)
	KindEvent              Kind = "event"               // zennet -n, run, demo: what happened while renting and holding (EventDoc)
	KindReceipts           Kind = "receipts"            // at release: a receipt per host (ReceiptsDoc)
	KindRun                Kind = "run"                 // zennet run, and DIR/run.json (taskrun.Doc)
	KindUsage              Kind = "usage"               // zennet usage ([]session.Usage)
	KindLedger             Kind = "ledger"              // zennet ledger (LedgerDoc)
	KindProviders          Kind = "providers"           // zennet providers ([]ProviderRow)
	KindReputation         Kind = "reputation"          // zennet reputation ([]ReputationRow)
	KindReleased           Kind = "released"            // zennet release ([]ReleasedSession)
	KindStatus             Kind = "status"              // zennet status ([]renter.SessionStatus)
	KindEstimate           Kind = "estimate"            // zennet -n --dry-run (renter.Estimate)
	KindOffers             Kind = "offers"              // zennet offers ([]OfferRow)
	KindDoctor             Kind = "doctor"              // zennet doctor ([]doctor.Check)
	KindConfig             Kind = "config"              // zennet config ([]ConfigRow)
	KindSSHConfig          Kind = "ssh-config"          // zennet ssh-config (SSHConfigDoc)
	KindLease              Kind = "lease"               // zennet provider lease ID (control.LeaseStatus)
	KindLeaseAction        Kind = "lease-action"        // zennet provider pause|resume|end (LeaseAction)
	KindProviderDrain      Kind = "provider-drain"      // zennet provider drain (DrainDoc)
	KindProviderStatus     Kind = "provider-status"     // zennet provider status (control.Status)
	KindProvider           Kind = "provider"            // zennet provide --json, and DATA_DIR/provider.json (provider.Info)
	KindPriceFit           Kind = "price-fit"           // zennet price fit (pricing.FitSummary)
	KindPriceModel         Kind = "price-model"         // zennet price show (PriceModelDoc)
	KindPriceQuote         Kind = "price-quote"         // zennet price quote (PriceQuoteDoc)
	KindPriceFairness      Kind = "price-fairness"      // zennet price fairness (pricing.FairnessReport)
	KindCalibration        Kind = "calibration"         // zennet bench run, publish (bench.Summary)
	KindCalibrationChecks  Kind = "calibration-checks"  // zennet bench verify ([]bench.Check)
	KindCalibrationImports Kind = "calibration-imports" // zennet bench import ([]bench.Check)
	KindImage              Kind = "image"               // zennet image build (ImageDoc)
	KindError              Kind = "error"               // any command's failure under --json, on stderr (ErrorDoc)
)

// ImageDoc is the root filesystem image after 'zennet image build'.
type ImageDoc struct {
	Path string `json:"path"`
	// State is "ready" (it was there, current) or "built".
	State string `json:"state"`
	// Packages are the extra packages asked for (none: the image's own).
	Packages []string `json:"packages"`
}

// ErrorDoc is a command's failure, as --json prints it on stderr: the
// sentence zennet would print, and the exit code it exits with.
type ErrorDoc struct {
	Message  string `json:"message"`
	ExitCode int    `json:"exit_code"`
}

// EventDoc is something that happened while a long-running command
// rented or held its hosts, a line of its stream between the hosts
// document and the receipts: its time, its type, the sentence zennet says
// on stderr, and the fields its type has (the others are left out).
type EventDoc struct {
	Time time.Time `json:"time"`
	// Type is one of: notice, provider-path, dropped, ended,
	// provider-lost, replaced, replace-short, explanation, probe,
	// spot-check.
	Type    string `json:"type"`
	Message string `json:"message"`
	// Host, Lease and Provider name what the event is about.
	Host     string `json:"host,omitempty"`
	Lease    string `json:"lease,omitempty"`
	Provider string `json:"provider,omitempty"`
	// Reason says why (dropped, ended, explanation); Cause is the
	// provider's end cause (ended), ProvidersFault whether it counts
	// against the provider (and the host is replaced).
	Reason         string `json:"reason,omitempty"`
	Cause          string `json:"cause,omitempty"`
	ProvidersFault bool   `json:"providers_fault,omitempty"`
	// Released: a dropped host had already left the rental.
	Released bool `json:"released,omitempty"`
	// Hosts: how many hosts a lost provider took with it; how many are
	// held after a short replacement.
	Hosts int `json:"hosts,omitempty"`
	// Got and Lost: the hosts replaced of those lost (replace-short).
	Got  int `json:"got,omitempty"`
	Lost int `json:"lost,omitempty"`
	// Path: how a provider behind a NAT was reached (provider-path).
	Path    string `json:"path,omitempty"`
	Relayed bool   `json:"relayed,omitempty"`
	// Failed: a probe or spot check failed (a failed spot check drops
	// the provider's hosts).
	Failed bool `json:"failed,omitempty"`
	// Error says what went wrong (provider-lost, replace-short, probe,
	// spot-check).
	Error string `json:"error,omitempty"`
}

type HostsDoc struct {
	Session string        `json:"session"`
	Hosts   []HostJSON    `json:"hosts"`
	Files   session.Files `json:"files"`
}

type HostJSON struct {
	Name        string  `json:"name"`
	LocalPort   int     `json:"local_port"`
	Provider    string  `json:"provider"`
	LeaseID     string  `json:"lease_id"`
	MemoryBytes int64   `json:"memory_bytes"`
	CPUs        float64 `json:"cpus"`
	DiskBytes   int64   `json:"disk_bytes"`
	HostKey     string  `json:"host_key"`
	// ClusterAddr is the host's address on the session's private network.
	ClusterAddr string `json:"cluster_addr,omitempty"`
	// PricePerWorkMsat is the agreed price per reference CPU-second of work
	// (0: flat rates).
	PricePerWorkMsat float64 `json:"price_per_work_msat,omitempty"`
}

type ReceiptsDoc struct {
	Hosts []renter.Receipt `json:"hosts"`
	Total pay.Totals       `json:"total"`
}

type LedgerDoc struct {
	Files []renter.LedgerFile `json:"ledgers"`
	Total pay.Totals          `json:"total"`
}

type ProviderRow struct {
	Address          string          `json:"address"`
	Provider         string          `json:"provider"`
	Fingerprint      string          `json:"fingerprint"`
	Capacity         market.Capacity `json:"capacity"`
	PricePerWorkMsat float64         `json:"price_per_work_msat"`
	Score            float64         `json:"score"`
	Methods          []string        `json:"methods"`
	Expires          time.Time       `json:"expires"`
	Reputation       float64         `json:"reputation"`
	SpotCheckFailed  bool            `json:"spot_check_failed,omitempty"`
}

type ReleasedSession struct {
	Session string `json:"session"`
	Pid     int    `json:"pid"`
	Hosts   int    `json:"hosts"`
	// HolderDied: the session was detached and its holder had died; it was
	// forgotten (its providers had ended its leases).
	HolderDied bool `json:"holder_died,omitempty"`
}

// LeaseAction is the --json result of pause, resume and end.
type LeaseAction struct {
	Action string `json:"action"`
	ID     string `json:"id"`
	// Lease is the lease after the action, null once the provider no
	// longer lists it.
	Lease *control.LeaseStatus `json:"lease"`
}

// ReputationRow is one counterpart in a reputation book, with its score.
type ReputationRow struct {
	market.Record
	Score float64 `json:"score"`
}

// DrainDoc is the provider's state after drain.
type DrainDoc struct {
	Draining bool `json:"draining"`
	Leases   int  `json:"leases"`
}

// PriceModelDoc is a price model with its hash.
type PriceModelDoc struct {
	Hash  string         `json:"hash"`
	Model *pricing.Model `json:"model"`
}

// PriceQuoteDoc is a usage's bill under a model.
type PriceQuoteDoc struct {
	Model string `json:"model"`
	Hash  string `json:"hash"`
	pricing.Bill
}
