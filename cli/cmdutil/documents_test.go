package cmdutil

import (
	"bytes"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/control"
	"github.com/zennet/zennet/internal/doctor"
	"github.com/zennet/zennet/market"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/pricing"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/provider"
	"github.com/zennet/zennet/renter"
	"github.com/zennet/zennet/session"
	"github.com/zennet/zennet/taskrun"
)

var update = flag.Bool("update", false, "rewrite the golden documents under testdata/documents")

// t0 is the time every sample document is stamped with.
var t0 = time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)

// sampleDocuments holds one document of each kind, as zennet prints it.
func sampleDocuments(t *testing.T) map[Kind]any {
	t.Helper()
	limits := proto.Limits{MemoryBytes: 512 << 20, CPUs: 1, DiskBytes: 4 << 30}
	usage := session.Usage{Name: "zennet-1", LeaseID: "zn-0123456789abcdef0", Provider: "127.0.0.1:2222", Seq: 3, Start: t0, Time: t0.Add(15 * time.Second),
		Counters: map[string]uint64{"cpu_ns": 1500000000}, Accepted: 3, Method: pay.MethodEmbedded, BilledMsat: 150, PaidMsat: 100, DueMsat: 50,
		CreditedMsat: 100, State: proto.StateRunning}
	receipt := renter.Receipt{Name: "zennet-1", Provider: "127.0.0.1:2222", CreditedMsat: 150,
		Receipt: pay.Receipt{Terms: pay.Terms{Lease: "zn-0123456789abcdef0", Role: pay.RoleRenter, Method: pay.MethodEmbedded, Peer: "SHA256:peer", Opened: t0},
			Status: pay.Status{Reports: 3, Billed: 150, Paid: 150}}}
	lease := control.LeaseStatus{ID: "zn-0123456789abcdef0", Renter: "SHA256:renter", Started: t0, Limits: limits, State: control.LeaseState("running"),
		Method: pay.MethodEmbedded, CPUNs: 1500000000, MemoryBytes: 64 << 20, BilledMsat: 150, EarnedMsat: 100, DueMsat: 50, LastReport: t0.Add(15 * time.Second)}
	// The price and calibration documents come from the project's own
	// sample files: a model, a usage, a fairness experiment, a set.
	td := filepath.Join("..", "..", "testdata")
	model, hash, err := pricing.ReadModelFile(filepath.Join(td, "pricing", "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	fit, err := model.Summary("model.json")
	if err != nil {
		t.Fatal(err)
	}
	ub, err := os.ReadFile(filepath.Join(td, "pricing", "usage.json"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := pricing.DecodeUsage(ub)
	if err != nil {
		t.Fatal(err)
	}
	bill, err := model.Bill(u)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.ReadFile(filepath.Join(td, "pricing", "fairness.json"))
	if err != nil {
		t.Fatal(err)
	}
	fin, err := pricing.DecodeFairnessInput(fb)
	if err != nil {
		t.Fatal(err)
	}
	fairness, err := pricing.Fairness(fin, pricing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	set, err := bench.ReadFile(filepath.Join(td, "calibration", "systrap.json"))
	if err != nil {
		t.Fatal(err)
	}
	setSum, err := set.Summary("systrap.json")
	if err != nil {
		t.Fatal(err)
	}
	check := bench.Check{File: "systrap.json", OK: true, Signed: true, Signer: "SHA256:b", Digest: "6e3cb2f074ecb6f1", Suite: "zennet-bench-v1",
		Machine: "m", Fingerprint: "f", Steps: 30}
	status := renter.SessionStatus{ID: "0123abcd", Pid: 4242, Started: t0, AgeSeconds: 15, Ready: true, Hosts: []string{"zennet-1"},
		Providers: []string{"127.0.0.1:2222"}, BilledMsat: 150, PaidMsat: 100, RateMsatPerHour: 36000, Detached: true, Log: "/c/sessions/0123abcd/holder.log"}
	return map[Kind]any{
		KindPriceFit:           fit,
		KindPriceModel:         PriceModelDoc{Hash: hash, Model: model},
		KindPriceQuote:         PriceQuoteDoc{Model: "model.json", Hash: hash, Bill: bill},
		KindPriceFairness:      fairness,
		KindCalibration:        setSum,
		KindCalibrationChecks:  []bench.Check{check},
		KindCalibrationImports: []bench.Check{check},
		KindHosts: HostsDoc{Session: "0123abcd", Files: session.Files{SSHConfig: "/c/sessions/0123abcd/ssh_config"},
			Hosts: []HostJSON{{"zennet-1", 40001, "127.0.0.1:2222", "zn-0123456789abcdef0", 512 << 20, 1, 4 << 30, "ssh-ed25519 AAAA", "10.77.0.1", 100}}},
		KindEvent: EventDoc{Time: t0, Type: "ended", Message: "zennet-1 (lease zn-0123456789abcdef0) ended by provider 127.0.0.1:2222: out of memory",
			Host: "zennet-1", Lease: "zn-0123456789abcdef0", Provider: "127.0.0.1:2222", Reason: "out of memory", Cause: "memory_exceeded"},
		KindReceipts: ReceiptsDoc{Hosts: []renter.Receipt{receipt}, Total: pay.Total([]pay.Receipt{receipt.Receipt}, "")},
		KindRun: taskrun.Doc{Session: "0123abcd", Sessions: []string{"0123abcd"}, Command: []string{"hostname"}, Count: 1, Replicas: 1, ResultsDir: "/r", OK: true,
			Tasks: []taskrun.Task{{Task: 1, Replica: 1, Host: "zennet-1", Provider: "127.0.0.1:2222", LeaseID: "zn-0123456789abcdef0", Seconds: 0.5,
				StdoutSHA256: "ab", ResultsSHA256: "cd", Results: "/r/1", Stdout: "/r/1.stdout", Stderr: "/r/1.stderr"}},
			Disagreements: []taskrun.Disagreement{}},
		KindUsage:  []session.Usage{usage},
		KindLedger: LedgerDoc{Files: []renter.LedgerFile{{Session: "0123abcd", Path: "/c/ledger/0123abcd.db", Receipts: []pay.Receipt{receipt.Receipt}}}, Total: pay.Total([]pay.Receipt{receipt.Receipt}, "")},
		KindProviders: []ProviderRow{{Address: "127.0.0.1:2222", Provider: "ssh-ed25519 AAAA", Fingerprint: "SHA256:p", PricePerWorkMsat: 100, Score: 1,
			Methods: []string{pay.MethodEmbedded}, Expires: t0}},
		KindReputation:     []ReputationRow{{Record: market.Record{Key: "SHA256:p", Leases: 2, Completed: 1, Last: t0}, Score: 0.6}},
		KindReleased:       []ReleasedSession{{Session: "0123abcd", Pid: 4242, Hosts: 2}, {Session: "4567cdef", Pid: 4343, Hosts: 1, HolderDied: true}},
		KindStatus:         []renter.SessionStatus{status},
		KindSSHConfig:      SSHConfigDoc{File: "/home/u/.ssh/config", Include: "Include /home/u/.config/zennet/ssh_config", Installed: true, Changed: true},
		KindConfig:         []ConfigRow{{Flag: "memory", Value: "1G", Source: "file"}, {Flag: "seed", Value: "[192.0.2.7:2222]", Source: "env ZENNET_SEEDS"}},
		KindDoctor:         []doctor.Check{{Name: "runsc", OK: true, Detail: "/usr/bin/runsc (runsc version release-20240916.0)"}, {Name: "image", Detail: "no /bin/sh", Fix: "run 'zennet image build'"}, {Name: "lnd", Skipped: true, Detail: "no lnd node configured"}},
		KindOffers:         []OfferRow{{Address: "127.0.0.1:2222", Fingerprint: "SHA256:p", PricePerWorkMsat: 100, Score: 1, CPUHourMsat: 360000, FreeHosts: 2, FreeCPUs: 2, FreeMemoryBytes: 1 << 30, FreeDiskBytes: 8 << 30, Calibration: "6e3cb2f074ecb6f1", Methods: []string{pay.MethodEmbedded}, Reputation: 0.5, Expires: t0}},
		KindEstimate:       renter.Estimate{Count: 2, Hosts: 2, MsatPerHour: 720000, Providers: []renter.ProviderQuote{{Address: "127.0.0.1:2222", Fingerprint: "SHA256:p", Offered: 2, Hosts: 2, PricePerWorkMsat: 100, Score: 1, Method: pay.MethodEmbedded, HostMsatPerHour: 360000, Calibration: "6e3cb2f074ecb6f1", CalibrationSigner: "SHA256:b", Note: "chosen: 2 hosts"}}},
		KindLease:          lease,
		KindLeaseAction:    LeaseAction{Action: "pause", ID: lease.ID, Lease: &lease},
		KindProviderDrain:  DrainDoc{Draining: true, Leases: 1},
		KindProviderStatus: control.Status{Time: t0, Leases: []control.LeaseStatus{lease}},
		KindImage:          ImageDoc{Path: "/root/.cache/zennet/images/mpi", State: "built", Packages: []string{"openmpi-bin"}},
		KindError:          ErrorDoc{Message: "no provider reachable: got 0 of 1 hosts: 127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused", ExitCode: ExitUnreachable},
		KindProvider: provider.Info{Address: "127.0.0.1:2222", Market: []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWExample"}, HostKey: "ssh-ed25519 AAAA", Fingerprint: "SHA256:p", DataDir: "/d",
			MaxLeases: 64, MemoryBytes: 8 << 30, CPUs: 2, Pid: 4242},
	}
}

// TestDocumentsGolden prints one document of each kind and compares it
// with its golden file (go test ./cli -run TestDocumentsGolden -update
// rewrites them): a change to a document's shape shows in the diff.
func TestDocumentsGolden(t *testing.T) {
	for kind, data := range sampleDocuments(t) {
		t.Run(string(kind), func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteJSON(&b, kind, data); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "documents", string(kind)+".json")
			if *update {
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("kind %s changed:\n got %s\nwant %s", kind, b.Bytes(), want)
			}
		})
	}
}

// TestDocumentKinds checks the naming convention: lowercase words joined
// by '-'.
func TestDocumentKinds(t *testing.T) {
	for kind := range sampleDocuments(t) {
		for i, c := range kind {
			if !(c >= 'a' && c <= 'z' || c == '-' && i > 0 && i < len(kind)-1) {
				t.Errorf("kind %q: want lowercase words joined by '-'", kind)
				break
			}
		}
	}
}

// TestEveryKindHasGolden reads the Kind constants from documents.go: each
// needs a sample above, so that no kind goes without its golden file.
func TestEveryKindHasGolden(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "documents.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	samples := sampleDocuments(t)
	n := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Kind" {
				continue
			}
			for _, v := range vs.Values {
				kind, _ := strconv.Unquote(v.(*ast.BasicLit).Value)
				n++
				if _, ok := samples[Kind(kind)]; !ok {
					t.Errorf("kind %q has no sample document in sampleDocuments", kind)
				}
			}
		}
	}
	if n != len(samples) {
		t.Errorf("documents.go declares %d kinds, sampleDocuments has %d", n, len(samples))
	}
}
