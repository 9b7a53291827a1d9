package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/renter"
)

type ledgerOptions struct {
	IO       cmdutil.IOStreams
	G        *cmdutil.GlobalOptions
	JSON     bool
	History  bool
	Lease    string
	Session  string
	Provider bool
	DataDir  string
	Limit    int
}

func newCmdLedger(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
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
		Args:    cmdutil.NoArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return runLedger(o) },
	}
	f := cmd.Flags()
	f.BoolVar(&o.JSON, "json", false, "print as JSON")
	f.BoolVar(&o.History, "history", false, "print every entry, oldest first, instead of receipts")
	f.StringVar(&o.Lease, "lease", "", "only this lease")
	f.StringVar(&o.Session, "session", "", "only this renter session")
	f.BoolVar(&o.Provider, "provider", false, "read the provider's ledger (in --data-dir) instead of the renter's")
	f.StringVar(&o.DataDir, "data-dir", cmdutil.DefaultProviderDataDir(), "the provider's data dir, with --provider")
	f.IntVar(&o.Limit, "limit", 0, "with --history, only the last N entries")
	return cmd
}

func runLedger(o *ledgerOptions) error {
	if o.Limit < 0 {
		return cmdutil.Usagef("--limit must not be negative")
	}
	q := renter.LedgerQuery{Session: o.Session, Lease: o.Lease, History: o.History, Limit: o.Limit}
	var files []renter.LedgerFile
	if o.Provider {
		abs, err := filepath.Abs(o.DataDir)
		if err != nil {
			return err
		}
		p := filepath.Join(abs, "ledger.db")
		if _, err := os.Stat(p); err != nil {
			return cmdutil.Usagef("no provider ledger at %s: pass the provider's --data-dir", p)
		}
		f, err := renter.ReadLedger(p, q)
		if err != nil {
			return err
		}
		if f.Live {
			return cmdutil.ConflictError{Err: fmt.Errorf("the provider running on %s holds its ledger; stop it to read the ledger, or watch it live with 'zennet dashboard'", o.DataDir)}
		}
		files = []renter.LedgerFile{f}
	} else {
		var err error
		if files, err = renter.ReadLedgers(o.G.ConfigDir, q); errors.Is(err, renter.ErrNoSessionLedger) {
			return cmdutil.Usagef("%v", err)
		} else if err != nil {
			return err
		}
	}
	doc := cmdutil.LedgerDoc{Files: []renter.LedgerFile{}}
	for _, f := range files {
		if f.Damaged != "" {
			fmt.Fprintf(o.IO.ErrOut, "zennet: %s\n", cmdutil.Printable(f.Damaged, false))
		}
		if !f.Empty() {
			doc.Files = append(doc.Files, f)
		}
	}
	doc.Total = renter.Total(doc.Files)
	if o.JSON {
		return cmdutil.WriteJSON(o.IO.Out, cmdutil.KindLedger, doc)
	}
	if o.History {
		printHistory(o, doc.Files)
	} else {
		printLedgerReceipts(o, doc)
	}
	if len(doc.Files) == 0 && cmdutil.IsTerminal(o.IO.ErrOut) {
		fmt.Fprintln(o.IO.ErrOut, "zennet: no payments recorded yet")
	}
	return nil
}

func printLedgerReceipts(o *ledgerOptions, doc cmdutil.LedgerDoc) {
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
	cmdutil.Table(o.IO.Out, []string{"SESSION", "LEASE", "ROLE", "METHOD", "OPENED", "REPORTS", "BILLED msat", "PAID msat", "UNPAID msat", "FEES msat", "STATE"}, rows)
}

func printHistory(o *ledgerOptions, files []renter.LedgerFile) {
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
	cmdutil.Table(o.IO.Out, []string{"SESSION", "LEASE", "TIME", "KIND", "MSAT", "BILLED", "PAID", "NOTE"}, rows)
}
