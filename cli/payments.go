package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/renter"
)

// lndFlags are lncli's flags for reaching an lnd node.
type lndFlags struct {
	LndDir, RPCServer, TLSCertPath, MacaroonPath, Network string
}

func (l *lndFlags) register(f *pflag.FlagSet) {
	f.StringVar(&l.LndDir, "lnddir", cmdutil.EnvOr("ZENNET_LNDDIR", ""), "lnd's base directory, for lightning payments (lncli's default: ~/.lnd)")
	f.StringVar(&l.RPCServer, "rpcserver", cmdutil.EnvOr("ZENNET_LND_RPCSERVER", ""), "host:port of lnd's gRPC interface (default localhost:10009)")
	f.StringVar(&l.TLSCertPath, "tlscertpath", cmdutil.EnvOr("ZENNET_LND_TLSCERTPATH", ""), "lnd's TLS certificate (default LNDDIR/tls.cert)")
	f.StringVar(&l.MacaroonPath, "macaroonpath", cmdutil.EnvOr("ZENNET_LND_MACAROONPATH", ""), "lnd macaroon (default LNDDIR/data/chain/bitcoin/NETWORK/admin.macaroon)")
	f.StringVar(&l.Network, "network", cmdutil.EnvOr("ZENNET_LND_NETWORK", ""), "bitcoin network of the lnd node: mainnet, testnet, signet, regtest, simnet (default mainnet)")
}

// set reports whether any flag names an lnd node.
func (l *lndFlags) set() bool {
	return l.LndDir != "" || l.RPCServer != "" || l.TLSCertPath != "" || l.MacaroonPath != ""
}

// dial connects to the node, with an error that says what to fix.
func (l *lndFlags) dial(ctx context.Context) (*pay.LND, error) {
	cfg, err := pay.LNDConfig{LndDir: l.LndDir, RPCServer: l.RPCServer, TLSCertPath: l.TLSCertPath,
		MacaroonPath: l.MacaroonPath, Network: l.Network}.WithDefaults()
	if err != nil {
		return nil, cmdutil.Usagef("--network: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	n, err := pay.DialLND(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("lightning: cannot use the lnd node at %s (%v); start lnd or point --lnddir, --rpcserver, --tlscertpath, --macaroonpath and --network at it", cfg.RPCServer, err)
	}
	return n, nil
}

// printReceipts prints a receipt per host and the total: a table on
// stderr, or with --json a "receipts" document, the last line of the
// stream on stdout.
func printReceipts(o *rentOptions, rs []renter.Receipt) error {
	if len(rs) == 0 {
		return nil
	}
	all := make([]pay.Receipt, len(rs))
	for i, r := range rs {
		all[i] = r.Receipt
	}
	total := pay.Total(all, "")
	if o.JSON {
		return o.writeDoc(cmdutil.KindReceipts, cmdutil.ReceiptsDoc{Hosts: rs, Total: total})
	}
	writeReceiptTable(o.IO.ErrOut, rs, total)
	return nil
}

func writeReceiptTable(w io.Writer, rs []renter.Receipt, total pay.Totals) {
	rows := make([][]string, 0, len(rs)+1)
	for _, r := range rs {
		st := r.Receipt.Status
		rows = append(rows, []string{r.Name, r.Provider, r.Receipt.Terms.Method, strconv.FormatUint(st.Reports, 10),
			pay.FormatMsat(st.Billed), pay.FormatMsat(st.Paid), pay.FormatMsat(r.CreditedMsat), pay.FormatMsat(st.Unpaid), pay.FormatMsat(st.Fees)})
	}
	rows = append(rows, []string{"total", "", "", "", pay.FormatMsat(total.Billed), pay.FormatMsat(total.Paid), "", pay.FormatMsat(total.Billed - min(total.Paid, total.Billed)), pay.FormatMsat(total.Fees)})
	cmdutil.Table(w, []string{"HOST", "PROVIDER", "METHOD", "REPORTS", "BILLED msat", "PAID msat", "ACKED msat", "UNPAID msat", "FEES msat"}, rows)
}

// receiptNote says what an unpaid remainder is.
func receiptNote(st pay.Status) string {
	switch {
	case st.Unpaid == 0:
		return ""
	case st.Unpaid < st.MinPayable:
		return fmt.Sprintf("%s msat below the %s msat minimum payment stays due", pay.FormatMsat(st.Unpaid), pay.FormatMsat(st.MinPayable))
	default:
		return fmt.Sprintf("%s msat unpaid", pay.FormatMsat(st.Unpaid))
	}
}

// counterRates parses --rate COUNTER=MSAT flags over defaults.
func counterRates(defaults map[meter.Counter]string, flags []string) (pay.Rates, error) {
	var rs pay.Rates
	names := make([]string, 0, len(defaults))
	for c, v := range defaults {
		if err := rs.Set(c, v); err != nil {
			return rs, err
		}
		names = append(names, c.Name())
	}
	slices.Sort(names)
	for _, f := range flags {
		name, val, ok := strings.Cut(f, "=")
		if !ok {
			return rs, cmdutil.Usagef("--rate %q: want COUNTER=MSAT_PER_UNIT, e.g. cpu_ns=1/1000000", f)
		}
		c, ok := meter.CounterByName(strings.TrimSpace(name))
		if !ok {
			var all []string
			for c := meter.Counter(0); c < meter.NumCounters; c++ {
				all = append(all, c.Name())
			}
			return rs, cmdutil.Usagef("--rate %q: unknown counter %q (counters: %s)", f, name, strings.Join(all, ", "))
		}
		if err := rs.Set(c, strings.TrimSpace(val)); err != nil {
			return rs, cmdutil.Usagef("--rate %q: %v", f, err)
		}
	}
	return rs, nil
}
