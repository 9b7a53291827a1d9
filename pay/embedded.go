package pay

import (
	"context"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// EmbeddedPayer pays one lease by signing cumulative vouchers with the
// renter's SSH key. Signing is paying: once recorded and handed out, a
// voucher is the provider's claim, so Send and Lookup always report it done.
type EmbeddedPayer struct {
	signer ssh.Signer
	lease  string
	payee  string
}

// NewEmbeddedPayer returns the renter's Payer for lease, paying the provider
// whose host key is payee.
func NewEmbeddedPayer(signer ssh.Signer, lease string, payee ssh.PublicKey) *EmbeddedPayer {
	return &EmbeddedPayer{signer: signer, lease: lease, payee: ssh.FingerprintSHA256(payee)}
}

// Method returns MethodEmbedded.
func (p *EmbeddedPayer) Method() string { return MethodEmbedded }

// MinPayable is 1 msat: a voucher can add any amount.
func (p *EmbeddedPayer) MinPayable() uint64 { return 1 }

// Prepare checks req and signs the voucher that pays it: sequence number
// args.Seq, total args.Paid + req.Msat.
func (p *EmbeddedPayer) Prepare(_ context.Context, args PayArgs, req Request) (Intent, error) {
	if req.Method != MethodEmbedded || req.Lease != p.lease || args.Lease != p.lease {
		return Intent{}, fmt.Errorf("%w: %s request for lease %q, paying embedded for %q", ErrBadRequest, req.Method, req.Lease, p.lease)
	}
	if req.Msat > args.Due {
		return Intent{}, fmt.Errorf("%w: provider asks %d msat, the renter's bill says %d msat are due", ErrAmount, req.Msat, args.Due)
	}
	v := Voucher{Lease: p.lease, Payee: p.payee, Seq: args.Seq, Total: args.Paid + req.Msat}
	if v.Total < args.Paid {
		return Intent{}, fmt.Errorf("%w: total overflows", ErrAmount)
	}
	if err := v.Sign(p.signer); err != nil {
		return Intent{}, err
	}
	return Intent{
		ID: fmt.Sprintf("voucher-%d", v.Seq), Lease: p.lease, Method: MethodEmbedded,
		Seq: args.Seq, Msat: req.Msat, Request: req, Voucher: &v, State: StatePending,
	}, nil
}

// Send reports the voucher paid: it is handed out with Proof.
func (p *EmbeddedPayer) Send(_ context.Context, in Intent) (Outcome, error) {
	return Outcome{State: StateDone, Msat: in.Msat}, nil
}

// Lookup reports a recorded voucher paid: the provider may hold it.
func (p *EmbeddedPayer) Lookup(_ context.Context, in Intent) (Outcome, error) {
	return Outcome{State: StateDone, Msat: in.Msat}, nil
}

// Proof carries the intent's voucher.
func (p *EmbeddedPayer) Proof(in Intent) Proof {
	return Proof{Method: MethodEmbedded, Lease: in.Lease, Msat: in.Msat, Voucher: in.Voucher}
}

// EmbeddedPayee receives one lease's vouchers: it checks each against the
// latest it holds (the claim) and counts what the total adds.
type EmbeddedPayee struct {
	terms VoucherTerms
}

// NewEmbeddedPayee returns the provider's Payee for lease, whose renter is
// renter, the provider's host key being self.
func NewEmbeddedPayee(lease string, renter, self ssh.PublicKey) *EmbeddedPayee {
	return &EmbeddedPayee{terms: VoucherTerms{Lease: lease, Payee: ssh.FingerprintSHA256(self), Renter: renter}}
}

// Method returns MethodEmbedded.
func (p *EmbeddedPayee) Method() string { return MethodEmbedded }

// MinPayable is 1 msat.
func (p *EmbeddedPayee) MinPayable() uint64 { return 1 }

// Request asks for msat; it has no effect outside the ledger.
func (p *EmbeddedPayee) Request(_ context.Context, lease string, reqSeq, reportSeq, msat uint64) (Intent, error) {
	if lease != p.terms.Lease {
		return Intent{}, fmt.Errorf("%w: request for lease %q from the payee of %q", ErrBadRequest, lease, p.terms.Lease)
	}
	req := Request{Method: MethodEmbedded, Lease: lease, Seq: reportSeq, Msat: msat}
	return Intent{ID: fmt.Sprintf("request-%d", reqSeq), Lease: lease, Method: MethodEmbedded,
		Seq: reqSeq, Msat: msat, Request: req, State: StatePending}, nil
}

// Confirm checks the proof's voucher against the claim (CheckVoucher) and
// counts what its total adds; it settles the pending requests, oldest
// first, that this covers.
func (p *EmbeddedPayee) Confirm(_ context.Context, st PayeeState, proof Proof) (Confirmation, error) {
	if proof.Method != MethodEmbedded || proof.Voucher == nil {
		return Confirmation{}, fmt.Errorf("%w: %s proof without a voucher", ErrBadRequest, proof.Method)
	}
	v := *proof.Voucher
	if err := CheckVoucher(p.terms, st.Claim, v); err != nil {
		return Confirmation{}, err
	}
	var before uint64
	if st.Claim != nil {
		before = st.Claim.Total
	}
	c := Confirmation{Msat: v.Total - before, Claim: &v}
	left := c.Msat
	for _, in := range st.Pending {
		if in.Msat > left {
			break
		}
		left -= in.Msat
		c.Settled = append(c.Settled, in.ID)
	}
	return c, nil
}

// Lookup reports a request pending: only a voucher settles it.
func (p *EmbeddedPayee) Lookup(_ context.Context, in Intent) (Outcome, error) {
	return Outcome{State: StatePending}, nil
}

// Cancel withdraws the request; a later voucher still counts in full.
func (p *EmbeddedPayee) Cancel(_ context.Context, in Intent) (Outcome, error) {
	return Outcome{State: StateFailed, Reason: "superseded by a later request"}, nil
}
