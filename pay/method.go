package pay

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Payment methods, as named in negotiation.
const (
	// MethodEmbedded is the embedded channel: signed cumulative vouchers.
	// It is the default: it needs no setup.
	MethodEmbedded = "embedded"
	// MethodLightning pays invoices over the Lightning network with lnd.
	MethodLightning = "lightning"
)

// DefaultMethod is the method chosen when the parties name none.
const DefaultMethod = MethodEmbedded

// Methods lists the methods this build supports, the default first.
var Methods = []string{MethodEmbedded, MethodLightning}

// ChooseMethod returns the first of the renter's preferred methods that the
// provider offers, or ErrNoMethod. An empty preference means the default.
func ChooseMethod(preferred, offered []string) (string, error) {
	if len(preferred) == 0 {
		preferred = []string{DefaultMethod}
	}
	for _, p := range preferred {
		for _, o := range offered {
			if p == o && knownMethod(p) {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%w: renter wants %v, provider offers %v", ErrNoMethod, preferred, offered)
}

func knownMethod(m string) bool { return m == MethodEmbedded || m == MethodLightning }

// Errors of payments.
var (
	// ErrNoMethod: the parties have no payment method in common.
	ErrNoMethod = errors.New("no common payment method")
	// ErrAmount: a request asks more than the payer's own bill says is due,
	// or an invoice's amount differs from the request's.
	ErrAmount = errors.New("payment request amount does not match the bill")
	// ErrCrossing: the request asks more than the renter's bill leaves
	// due, but no more than it billed: the provider asked before counting
	// a payment in flight. It is not paid as asked (an invoice cannot be
	// paid in part); the next request, or the payment in flight, settles
	// it. Embedded vouchers pay what is due instead.
	ErrCrossing = errors.New("payment request crosses a payment in flight")
	// ErrBelowMinimum: the amount is below what the method can pay.
	ErrBelowMinimum = errors.New("amount below the payable minimum")
	// ErrBadRequest: a payment request or proof is malformed, or for
	// another lease, method or payee.
	ErrBadRequest = errors.New("bad payment request")
	// ErrPaymentFailed: the method says the payment did not and will not
	// happen.
	ErrPaymentFailed = errors.New("payment failed")
	// ErrNotSettled: the payee cannot confirm the payment (yet).
	ErrNotSettled = errors.New("payment not settled")
	// ErrUnknownPayment: a proof names a payment the payee never asked
	// for, or has counted already.
	ErrUnknownPayment = errors.New("unknown or already counted payment")
)

// Request is the payee's demand for payment of a lease's bill, sent with
// the usage report it bills up to.
type Request struct {
	Method string `json:"method"`
	Lease  string `json:"lease"`
	// Seq is the last usage report whose bill the request covers; 0 for
	// a prepayment, asked before any report.
	Seq uint64 `json:"seq"`
	// Msat is the amount asked.
	Msat uint64 `json:"msat"`
	// Invoice is a BOLT 11 payment request for Msat (lightning).
	Invoice string `json:"invoice,omitempty"`
}

// Proof is the payer's answer to a Request: what it paid.
type Proof struct {
	Method string `json:"method"`
	Lease  string `json:"lease"`
	Msat   uint64 `json:"msat"`
	// Voucher is the signed cumulative voucher (embedded).
	Voucher *Voucher `json:"voucher,omitempty"`
	// PaymentHash is the hex payment hash of the paid invoice (lightning).
	PaymentHash string `json:"payment_hash,omitempty"`
	// Preimage is the hex preimage the payee revealed (lightning): the
	// payer's receipt.
	Preimage string `json:"preimage,omitempty"`
}

// MaxMessageSize bounds an encoded Request or Proof.
const MaxMessageSize = 16 << 10

// Intent states.
const (
	// StatePending: recorded, maybe sent, outcome unknown.
	StatePending = "pending"
	// StateDone: paid (payer) or counted (payee).
	StateDone = "done"
	// StateFailed: did not and will not happen (or was withdrawn).
	StateFailed = "failed"
)

// Intent is one payment as the ledger records it before it is acted on: the
// renter's payment before it is sent, the provider's request before it is
// sent to the renter. Its State then moves, once, from pending to done or
// failed.
type Intent struct {
	// ID is unique within the lease: the payment hash (lightning) or
	// "voucher-SEQ" (embedded).
	ID     string `json:"id"`
	Lease  string `json:"lease"`
	Method string `json:"method"`
	// Seq numbers the lease's payments (renter) or requests (provider)
	// from 1.
	Seq  uint64 `json:"seq"`
	Msat uint64 `json:"msat"`
	// Request is what the intent pays (renter) or asks (provider).
	Request Request `json:"request"`
	// Voucher is the signed voucher (embedded renter).
	Voucher *Voucher `json:"voucher,omitempty"`
	// PaymentHash is the invoice's payment hash, hex (lightning).
	PaymentHash string    `json:"payment_hash,omitempty"`
	State       string    `json:"state"`
	Created     time.Time `json:"created"`
	Resolved    time.Time `json:"resolved,omitzero"`
	// FeeMsat is the routing fee paid on top of Msat (lightning renter).
	FeeMsat  uint64 `json:"fee_msat,omitempty"`
	Preimage string `json:"preimage,omitempty"`
	// Reason says why it failed.
	Reason string `json:"reason,omitempty"`
}

// Outcome is what became of an intent, as its method reports it.
type Outcome struct {
	// State is StateDone, StateFailed or StatePending (not known yet).
	State string
	// Msat is the amount paid or received; for a payee it may exceed the
	// intent's (an overpaid invoice).
	Msat     uint64
	FeeMsat  uint64
	Preimage string
	Reason   string
}

// PayArgs are what a Payer needs besides the request: the renter's own
// figures for the lease.
type PayArgs struct {
	Lease string
	// Seq is the number of this payment, from 1.
	Seq uint64
	// Due is what the renter's bill says it owes now, payments in flight
	// deducted.
	Due uint64
	// Paid is the cumulative amount paid or in flight before this payment.
	Paid uint64
}

// Payer is the renter's side of a payment method for one lease.
// Implementations: EmbeddedPayer, LightningPayer.
type Payer interface {
	Method() string
	// MinPayable is the least amount in msat the method can pay.
	MinPayable() uint64
	// Prepare checks req against args (the amount, the lease, and for
	// lightning the invoice's amount, payee and expiry) and returns the
	// intent to record before paying. It pays nothing.
	Prepare(ctx context.Context, args PayArgs, req Request) (Intent, error)
	// Send pays the intent. It returns the outcome, StatePending when it
	// cannot tell (Lookup then finds out); an error means nothing is known
	// either. Sending an intent again never pays twice.
	Send(ctx context.Context, in Intent) (Outcome, error)
	// Lookup finds what became of an intent recorded before a crash.
	Lookup(ctx context.Context, in Intent) (Outcome, error)
	// Proof is what to send the payee for a done intent.
	Proof(in Intent) Proof
}

// PayeeState is the provider's record of a lease that a Payee checks
// proofs against.
type PayeeState struct {
	// Claim is the latest accepted voucher (embedded).
	Claim *Voucher
	// Pending are the lease's requests not yet paid.
	Pending []Intent
}

// Confirmation is what a proof pays, as the Payee established it.
type Confirmation struct {
	// Msat is newly received.
	Msat uint64
	// Claim is the new claim (embedded).
	Claim *Voucher
	// Settled are the IDs of the pending requests the proof settles.
	Settled []string
	// Preimage is the settled invoice's preimage (lightning).
	Preimage string
}

// Payee is the provider's side of a payment method for one lease.
// Implementations: EmbeddedPayee, LightningPayee.
type Payee interface {
	Method() string
	// MinPayable is the least amount in msat the method can receive.
	MinPayable() uint64
	// Request makes the request for msat of the bill through report seq
	// (for lightning, an invoice) and returns the intent to record before
	// sending it to the renter.
	Request(ctx context.Context, lease string, reqSeq, reportSeq, msat uint64) (Intent, error)
	// Confirm checks proof against st and establishes what it pays, waiting
	// (within ctx) for a lightning invoice to settle. It returns an error
	// wrapping ErrVoucherRejected, ErrBadRequest, ErrUnknownPayment or
	// ErrNotSettled when the proof pays nothing.
	Confirm(ctx context.Context, st PayeeState, proof Proof) (Confirmation, error)
	// Lookup finds whether a pending request was paid.
	Lookup(ctx context.Context, in Intent) (Outcome, error)
	// Cancel withdraws a pending request so that it can no longer be
	// paid; the outcome says StateDone if it was paid first.
	Cancel(ctx context.Context, in Intent) (Outcome, error)
}

// EncodeRequest returns req as one line of JSON, newline included.
func EncodeRequest(req Request) ([]byte, error) {
	if err := req.validate(); err != nil {
		return nil, fmt.Errorf("encode payment request: %w", err)
	}
	return encodeLine("payment request", req)
}

// DecodeRequest parses and validates one encoded Request.
func DecodeRequest(b []byte) (Request, error) {
	var req Request
	if err := decodeStrict(b, &req); err != nil {
		return Request{}, fmt.Errorf("decode payment request: %w", err)
	}
	if err := req.validate(); err != nil {
		return Request{}, fmt.Errorf("decode payment request: %w", err)
	}
	return req, nil
}

// EncodeProof returns p as one line of JSON, newline included.
func EncodeProof(p Proof) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("encode payment proof: %w", err)
	}
	return encodeLine("payment proof", p)
}

// DecodeProof parses and validates one encoded Proof. It verifies no
// signature or settlement: Provider.Confirm does.
func DecodeProof(b []byte) (Proof, error) {
	var p Proof
	if err := decodeStrict(b, &p); err != nil {
		return Proof{}, fmt.Errorf("decode payment proof: %w", err)
	}
	if err := p.validate(); err != nil {
		return Proof{}, fmt.Errorf("decode payment proof: %w", err)
	}
	return p, nil
}

func encodeLine(what string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", what, err)
	}
	if len(b) >= MaxMessageSize {
		return nil, fmt.Errorf("encode %s: %d bytes exceeds %d", what, len(b), MaxMessageSize)
	}
	return append(b, '\n'), nil
}

func decodeStrict(b []byte, v any) error {
	if len(b) > MaxMessageSize {
		return fmt.Errorf("%d bytes exceeds %d", len(b), MaxMessageSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

func (req *Request) validate() error {
	if !knownMethod(req.Method) {
		return fmt.Errorf("unknown method %q", req.Method)
	}
	if err := validLease(req.Lease); err != nil {
		return err
	}
	if req.Msat == 0 {
		return errors.New("amount 0")
	}
	switch {
	case req.Method == MethodLightning && (req.Invoice == "" || len(req.Invoice) > 4096):
		return fmt.Errorf("lightning request with an invoice of %d bytes", len(req.Invoice))
	case req.Method == MethodEmbedded && req.Invoice != "":
		return errors.New("embedded request with an invoice")
	}
	return nil
}

func (p *Proof) validate() error {
	if !knownMethod(p.Method) {
		return fmt.Errorf("unknown method %q", p.Method)
	}
	if err := validLease(p.Lease); err != nil {
		return err
	}
	switch p.Method {
	case MethodEmbedded:
		if p.Voucher == nil || p.PaymentHash != "" || p.Preimage != "" {
			return errors.New("embedded proof without a voucher alone")
		}
		if p.Voucher.Lease != p.Lease {
			return fmt.Errorf("voucher for lease %q in a proof for %q", p.Voucher.Lease, p.Lease)
		}
	case MethodLightning:
		if p.Voucher != nil {
			return errors.New("lightning proof with a voucher")
		}
		if err := validHash("payment hash", p.PaymentHash); err != nil {
			return err
		}
		if p.Preimage != "" {
			if err := validHash("preimage", p.Preimage); err != nil {
				return err
			}
		}
	}
	return nil
}

// validHash accepts 32 bytes in lowercase hex.
func validHash(what, s string) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 || hex.EncodeToString(b) != s {
		return fmt.Errorf("%s %.70q: want 64 lowercase hex digits", what, s)
	}
	return nil
}
