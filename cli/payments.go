package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
)

// lndFlags are lncli's flags for reaching an lnd node.
type lndFlags struct {
	LndDir, RPCServer, TLSCertPath, MacaroonPath, Network string
}

func (l *lndFlags) register(f *pflag.FlagSet) {
	f.StringVar(&l.LndDir, "lnddir", envOr("ZENNET_LNDDIR", ""), "lnd's base directory, for lightning payments (lncli's default: ~/.lnd)")
	f.StringVar(&l.RPCServer, "rpcserver", envOr("ZENNET_LND_RPCSERVER", ""), "host:port of lnd's gRPC interface (default localhost:10009)")
	f.StringVar(&l.TLSCertPath, "tlscertpath", envOr("ZENNET_LND_TLSCERTPATH", ""), "lnd's TLS certificate (default LNDDIR/tls.cert)")
	f.StringVar(&l.MacaroonPath, "macaroonpath", envOr("ZENNET_LND_MACAROONPATH", ""), "lnd macaroon (default LNDDIR/data/chain/bitcoin/NETWORK/admin.macaroon)")
	f.StringVar(&l.Network, "network", envOr("ZENNET_LND_NETWORK", ""), "bitcoin network of the lnd node: mainnet, testnet, signet, regtest, simnet (default mainnet)")
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
		return nil, usagef("--network: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	n, err := pay.DialLND(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("lightning: cannot use the lnd node at %s (%v); start lnd or point --lnddir, --rpcserver, --tlscertpath, --macaroonpath and --network at it", cfg.RPCServer, err)
	}
	return n, nil
}

// acceptTerms checks an offer's payment terms and picks the method: the
// first of the renter's that the provider accepts. Rates the provider says
// are its price model's must be what its calibration gives. It returns
// the provider's calibration set, if it offers one.
func acceptTerms(preferred []string, offer proto.Offer) (string, pay.Rates, *bench.Set, error) {
	var rates pay.Rates
	if err := rates.UnmarshalJSON(offer.Payment.Rates); err != nil {
		return "", rates, nil, fmt.Errorf("its offer's prices are malformed: %w", err)
	}
	var set *bench.Set
	if len(offer.Payment.Calibration) > 0 {
		var err error
		if set, err = checkModelRates(offer, rates); err != nil {
			return "", rates, nil, fmt.Errorf("its offer does not add up: %w", err)
		}
	}
	method, err := pay.ChooseMethod(preferred, offer.Payment.Methods)
	if err != nil {
		return "", rates, nil, fmt.Errorf("%w (choose another with --pay)", err)
	}
	if method == pay.MethodLightning && offer.Payment.LightningNode == "" {
		return "", rates, nil, errors.New("it offers lightning without naming its node")
	}
	return method, rates, set, nil
}

// ledgerDir is where a renter keeps its sessions' ledgers.
func ledgerDir(configDir string) string { return filepath.Join(configDir, "ledger") }

// openRenterLedger opens a session's own ledger: each renter process has
// its own file, so that runs at once never wait for each other.
func openRenterLedger(configDir, session string) (*pay.Ledger, error) {
	dir := ledgerDir(configDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create ledger dir: %w", err)
	}
	return pay.Open(filepath.Join(dir, session+".db"), nil)
}

// settleOldLedgers finishes the ledgers of sessions that ended without
// closing them (a crash, a kill): it asks each payment method what became
// of payments left pending, records it, and closes the accounts. Ledgers
// still held by a running session are left alone. Lightning payments need
// the renter's node: without lnd they stay pending and a note says so.
func settleOldLedgers(ctx context.Context, configDir string, signer gossh.Signer, lnd *pay.LND, current string) []string {
	paths, _ := filepath.Glob(filepath.Join(ledgerDir(configDir), "*.db"))
	var notes []string
	for _, path := range paths {
		if strings.TrimSuffix(filepath.Base(path), ".db") == current {
			continue
		}
		l, err := pay.Open(path, &pay.Options{Timeout: 50 * time.Millisecond})
		if err != nil {
			continue // a running session's, or unreadable: ledger reports those
		}
		rs, err := l.Receipts()
		if err != nil {
			l.Close()
			notes = append(notes, fmt.Sprintf("ledger %s: %v", path, err))
			continue
		}
		for _, r := range rs {
			if !r.Status.Closed.IsZero() || r.Terms.Role != pay.RoleRenter {
				continue
			}
			var payer pay.Payer
			switch {
			case r.Terms.Method == pay.MethodLightning && lnd != nil:
				payer = lnd.Payer(pay.LightningPayerTerms{Lease: r.Terms.Lease, MinPayable: r.Terms.MinPayable})
			case r.Terms.Method == pay.MethodLightning:
				if r.Status.Pending > 0 {
					notes = append(notes, fmt.Sprintf("lease %s of an ended session has %s msat of Lightning payments whose outcome is unknown: rent once with --pay lightning and your lnd flags to settle them",
						r.Terms.Lease, msat(r.Status.Pending)))
				}
				continue
			default:
				// Only Lookup is asked of it: a signed voucher is paid.
				payer = pay.NewEmbeddedPayer(signer, r.Terms.Lease, signer.PublicKey())
			}
			acct, err := l.OpenRenter(pay.RenterTerms{Lease: r.Terms.Lease, Rates: r.Terms.Rates, Provider: r.Terms.Peer,
				MinPayable: r.Terms.MinPayable}, payer)
			if err != nil {
				notes = append(notes, fmt.Sprintf("lease %s: %v", r.Terms.Lease, err))
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			_, err = acct.Reconcile(rctx)
			cancel()
			if err != nil || len(acct.Pending()) > 0 {
				acct.Detach()
				notes = append(notes, fmt.Sprintf("lease %s: a payment of an ended session is still unresolved (%v); it is retried next time", r.Terms.Lease, err))
				continue
			}
			if _, err := acct.Close(); err != nil {
				notes = append(notes, fmt.Sprintf("lease %s: %v", r.Terms.Lease, err))
			}
		}
		l.Close()
	}
	return notes
}

// msat formats an amount in msat with thousands separators.
func msat(v uint64) string {
	s := strconv.FormatUint(v, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

type receiptsDoc struct {
	Hosts []hostReceipt `json:"hosts"`
	Total pay.Totals    `json:"total"`
}

// printReceipts prints a receipt per host and the total: a table on
// stderr, or a "receipts" JSON document on stdout with --json.
func printReceipts(o *rentOptions, rs []hostReceipt) error {
	if len(rs) == 0 {
		return nil
	}
	all := make([]pay.Receipt, len(rs))
	for i, r := range rs {
		all[i] = r.Receipt
	}
	total := pay.Total(all, "")
	if o.JSON {
		return writeJSON(o.IO.Out, "receipts", receiptsDoc{Hosts: rs, Total: total})
	}
	writeReceiptTable(o.IO.ErrOut, rs, total)
	return nil
}

func writeReceiptTable(w io.Writer, rs []hostReceipt, total pay.Totals) {
	rows := make([][]string, 0, len(rs)+1)
	for _, r := range rs {
		st := r.Receipt.Status
		rows = append(rows, []string{r.Name, r.Provider, r.Receipt.Terms.Method, strconv.FormatUint(st.Reports, 10),
			msat(st.Billed), msat(st.Paid), msat(r.CreditedMsat), msat(st.Unpaid), msat(st.Fees)})
	}
	rows = append(rows, []string{"total", "", "", "", msat(total.Billed), msat(total.Paid), "", msat(total.Billed - min(total.Paid, total.Billed)), msat(total.Fees)})
	table(w, []string{"HOST", "PROVIDER", "METHOD", "REPORTS", "BILLED msat", "PAID msat", "ACKED msat", "UNPAID msat", "FEES msat"}, rows)
}

// receiptNote says what an unpaid remainder is.
func receiptNote(st pay.Status) string {
	switch {
	case st.Unpaid == 0:
		return ""
	case st.Unpaid < st.MinPayable:
		return fmt.Sprintf("%s msat below the %s msat minimum payment stays due", msat(st.Unpaid), msat(st.MinPayable))
	default:
		return fmt.Sprintf("%s msat unpaid", msat(st.Unpaid))
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
			return rs, usagef("--rate %q: want COUNTER=MSAT_PER_UNIT, e.g. cpu_ns=1/1000000", f)
		}
		c, ok := meter.CounterByName(strings.TrimSpace(name))
		if !ok {
			var all []string
			for c := meter.Counter(0); c < meter.NumCounters; c++ {
				all = append(all, c.Name())
			}
			return rs, usagef("--rate %q: unknown counter %q (counters: %s)", f, name, strings.Join(all, ", "))
		}
		if err := rs.Set(c, strings.TrimSpace(val)); err != nil {
			return rs, usagef("--rate %q: %v", f, err)
		}
	}
	return rs, nil
}
