package renter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/pay"
)

// openRenterLedger opens a session's own ledger: each renter process has
// its own file, so that runs at once never wait for each other.
func openRenterLedger(configDir, session string) (*pay.Ledger, error) {
	dir := LedgerDir(configDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create ledger dir: %w", err)
	}
	return pay.Open(filepath.Join(dir, session+".db"), nil)
}

// setAsideDamaged renames a damaged ledger file out of the way (so that
// it stops nothing: renting and 'zennet ledger' go on without it) and
// returns what to tell the user: which file, where it went, what to do.
// The file is kept, never removed: it held payment records.
func setAsideDamaged(path string, damage error) string {
	to, err := pay.SetAside(path, time.Now())
	if err != nil {
		return fmt.Sprintf("%v; it could not be set aside (%v): move it out of %s yourself, keeping it if you need its payment records", damage, err, filepath.Dir(path))
	}
	return fmt.Sprintf("%v; set aside as %s, and its payment records are left out from now on: keep that file if you need them (what is left of it can be read with bbolt's tools), remove it when you do not", damage, to)
}

// settleOldLedgers finishes the ledgers of sessions that ended without
// closing them (a crash, a kill): it asks each payment method what became
// of payments left pending, records it, and closes the accounts. Ledgers
// still held by a running session are left alone. Lightning payments need
// the renter's node: without lnd they stay pending and a note says so.
func settleOldLedgers(ctx context.Context, configDir string, signer gossh.Signer, lnd *pay.LND, current string) []string {
	paths, _ := filepath.Glob(filepath.Join(LedgerDir(configDir), "*.db"))
	var notes []string
	for _, path := range paths {
		if strings.TrimSuffix(filepath.Base(path), ".db") == current {
			continue
		}
		l, err := pay.Open(path, &pay.Options{Timeout: 50 * time.Millisecond})
		if errors.Is(err, pay.ErrDamaged) {
			notes = append(notes, setAsideDamaged(path, err))
			continue
		}
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
						r.Terms.Lease, pay.FormatMsat(r.Status.Pending)))
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
