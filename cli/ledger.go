package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	bolt "go.etcd.io/bbolt"

	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/renter"
	"github.com/zennet/zennet/session"
)

type ledgerOptions struct {
	IO       IOStreams
	G        *globalOptions
	JSON     bool
	History  bool
	Lease    string
	Session  string
	Provider bool
	DataDir  string
	Limit    int
}

func newCmdLedger(io IOStreams, g *globalOptions) *cobra.Command {
	o := &ledgerOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "ledger",
		Short: "Show what was billed and paid, per lease",
		Long: `ledger shows the payment records this machine keeps: a receipt per lease (what
was billed, paid, acknowledged and is still unpaid, in millisatoshi), or with
--history every report, bill and payment in order.

As a renter, each session keeps its own ledger under the config dir; a session
still running holds its file, and ledger shows its live figures instead (as
'zennet usage' does). With --provider it reads the provider's ledger in its
data dir, which a running provider holds.`,
		Example: "  zennet ledger\n  zennet ledger --history --lease zn-0123456789abcdef0\n  zennet ledger --provider --data-dir /var/lib/zennet/provider --json",
		Args:    noArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return runLedger(o) },
	}
	f := cmd.Flags()
	f.BoolVar(&o.JSON, "json", false, "print as JSON")
	f.BoolVar(&o.History, "history", false, "print every entry, oldest first, instead of receipts")
	f.StringVar(&o.Lease, "lease", "", "only this lease")
	f.StringVar(&o.Session, "session", "", "only this renter session")
	f.BoolVar(&o.Provider, "provider", false, "read the provider's ledger (in --data-dir) instead of the renter's")
	f.StringVar(&o.DataDir, "data-dir", filepath.Join(defaultDataDir(), "provider"), "the provider's data dir, with --provider")
	f.IntVar(&o.Limit, "limit", 0, "with --history, only the last N entries")
	return cmd
}

func runLedger(o *ledgerOptions) error {
	if o.Limit < 0 {
		return usagef("--limit must not be negative")
	}
	var paths []string
	if o.Provider {
		abs, err := filepath.Abs(o.DataDir)
		if err != nil {
			return err
		}
		p := filepath.Join(abs, "ledger.db")
		if _, err := os.Stat(p); err != nil {
			return usagef("no provider ledger at %s: pass the provider's --data-dir", p)
		}
		paths = []string{p}
	} else {
		dir := renter.LedgerDir(o.G.ConfigDir)
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		for _, e := range ents {
			id, ok := strings.CutSuffix(e.Name(), ".db")
			if !ok || o.Session != "" && id != o.Session {
				continue
			}
			paths = append(paths, filepath.Join(dir, e.Name()))
		}
		if o.Session != "" && len(paths) == 0 {
			return usagef("no ledger of session %q in %s", o.Session, dir)
		}
	}
	// Oldest first.
	slices.SortFunc(paths, func(a, b string) int { return modTime(a).Compare(modTime(b)) })
	var doc ledgerDoc
	var all []pay.Receipt
	for _, p := range paths {
		lf, err := readLedger(o, p)
		if err != nil {
			return err
		}
		if lf.Live && o.Provider {
			return conflictError{fmt.Errorf("the provider running on %s holds its ledger; stop it to read the ledger, or watch it live with 'zennet dashboard'", o.DataDir)}
		}
		if len(lf.Receipts) == 0 && len(lf.Entries) == 0 && len(lf.Hosts) == 0 {
			continue
		}
		all = append(all, lf.Receipts...)
		doc.Files = append(doc.Files, lf)
	}
	doc.Total = pay.Total(all, "")
	if o.JSON {
		if doc.Files == nil {
			doc.Files = []ledgerFile{}
		}
		return writeJSON(o.IO.Out, KindLedger, doc)
	}
	if o.History {
		printHistory(o, doc.Files)
	} else {
		printLedgerReceipts(o, doc)
	}
	if len(doc.Files) == 0 && isTerminal(o.IO.ErrOut) {
		fmt.Fprintln(o.IO.ErrOut, "zennet: no payments recorded yet")
	}
	return nil
}

func modTime(p string) time.Time {
	st, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

// readLedger reads one ledger file; a file a running zennet holds is
// reported live, with the session's own figures when it is a renter's.
func readLedger(o *ledgerOptions, path string) (ledgerFile, error) {
	lf := ledgerFile{Path: path}
	if !o.Provider {
		lf.Session = strings.TrimSuffix(filepath.Base(path), ".db")
	}
	l, err := pay.Open(path, &pay.Options{Timeout: 100 * time.Millisecond})
	if errors.Is(err, bolt.ErrTimeout) {
		lf.Live = true
		if !o.Provider {
			hosts, _ := session.ReadUsage(o.G.ConfigDir, lf.Session)
			for _, h := range hosts {
				if o.Lease == "" || h.LeaseID == o.Lease {
					lf.Hosts = append(lf.Hosts, h)
				}
			}
		}
		return lf, nil
	}
	if err != nil {
		return lf, err
	}
	defer l.Close()
	if o.History {
		lf.Entries, err = l.History(pay.Query{Lease: o.Lease, Limit: o.Limit})
		if errors.Is(err, pay.ErrNoLease) {
			err = nil
		}
		return lf, err
	}
	rs, err := l.Receipts()
	if err != nil {
		return lf, err
	}
	for _, r := range rs {
		if o.Lease == "" || r.Terms.Lease == o.Lease {
			lf.Receipts = append(lf.Receipts, r)
		}
	}
	return lf, nil
}

func printLedgerReceipts(o *ledgerOptions, doc ledgerDoc) {
	var rows [][]string
	for _, f := range doc.Files {
		for _, r := range f.Receipts {
			st := r.Status
			state := "closed"
			if st.Closed.IsZero() {
				state = "open"
			}
			if n := receiptNote(st); n != "" {
				state += ": " + n
			}
			rows = append(rows, []string{f.Session, r.Terms.Lease, r.Terms.Role, r.Terms.Method, r.Terms.Opened.Local().Format(time.DateTime),
				strconv.FormatUint(st.Reports, 10), pay.FormatMsat(st.Billed), pay.FormatMsat(st.Paid), pay.FormatMsat(st.Unpaid), pay.FormatMsat(st.Fees), state})
		}
		for _, h := range f.Hosts {
			rows = append(rows, []string{f.Session, h.LeaseID, "renter", h.Method, h.Start.Local().Format(time.DateTime),
				strconv.Itoa(h.Accepted), pay.FormatMsat(h.BilledMsat), pay.FormatMsat(h.PaidMsat), pay.FormatMsat(h.DueMsat), "", "live (" + h.Name + ")"})
		}
	}
	t := doc.Total
	if len(rows) > 0 {
		rows = append(rows, []string{"total", "", "", "", "", "", pay.FormatMsat(t.Billed), pay.FormatMsat(t.Paid), pay.FormatMsat(t.Billed - min(t.Paid, t.Billed)), pay.FormatMsat(t.Fees), ""})
	}
	table(o.IO.Out, []string{"SESSION", "LEASE", "ROLE", "METHOD", "OPENED", "REPORTS", "BILLED msat", "PAID msat", "UNPAID msat", "FEES msat", "STATE"}, rows)
}

func printHistory(o *ledgerOptions, files []ledgerFile) {
	var rows [][]string
	for _, f := range files {
		if f.Live {
			rows = append(rows, []string{f.Session, "", "", "live", "", "", "", "session running: its history is readable once it ends"})
			continue
		}
		for _, e := range f.Entries {
			rows = append(rows, []string{f.Session, e.Lease, e.Time.Local().Format(time.DateTime + ".000"), e.Kind, pay.FormatMsat(e.Msat),
				pay.FormatMsat(e.Billed), pay.FormatMsat(e.Paid), e.Note})
		}
	}
	table(o.IO.Out, []string{"SESSION", "LEASE", "TIME", "KIND", "MSAT", "BILLED", "PAID", "NOTE"}, rows)
}
