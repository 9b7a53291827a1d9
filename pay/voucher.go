package pay

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/signedjson"
	"github.com/zennet/zennet/internal/sshsig"
)

// VoucherVersion is the version of the voucher format, JSON and signed
// bytes alike.
const VoucherVersion = 1

// MaxVoucherSize bounds an encoded voucher.
const MaxVoucherSize = 8 << 10

// VoucherNamespace is the namespace of voucher signatures. Signed data
// follows OpenSSH's PROTOCOL.sshsig (as meter.SignatureNamespace does for
// usage reports), so a voucher signature by the renter's key can never pass
// for its signature over anything else: an SSH login, a file signed with
// ssh-keygen -Y sign, a usage report.
const VoucherNamespace = "payment-voucher-v1@zennet"

// Errors of voucher checks. Every rejection wraps ErrVoucherRejected and one
// of the others.
var (
	ErrVoucherRejected = errors.New("voucher rejected")
	// ErrBadVoucherSignature: missing, malformed or not by the renter's key.
	ErrBadVoucherSignature = errors.New("bad voucher signature")
	// ErrVoucherReplay: the sequence number is not above the claim's.
	ErrVoucherReplay = errors.New("voucher replayed")
	// ErrVoucherTotal: the total is below the claim's.
	ErrVoucherTotal = errors.New("voucher total below the claim")
	// ErrVoucherLease: the voucher is for another lease or another payee.
	ErrVoucherLease = errors.New("voucher for another lease")
)

// Voucher is the embedded channel's payment: the renter's signed promise
// that it owes the payee Total msat for the lease, in all. Each voucher
// supersedes the ones before it; the payee keeps the latest as its claim.
type Voucher struct {
	Lease string
	// Payee is the SHA256 fingerprint (ssh.FingerprintSHA256) of the
	// provider's host key, so that a voucher names whom it pays.
	Payee string
	// Seq numbers the lease's vouchers from 1, strictly increasing.
	Seq uint64
	// Total is the cumulative amount in msat, never decreasing.
	Total uint64
	// Signature is by the renter's SSH key over CanonicalBytes, wrapped as
	// PROTOCOL.sshsig describes; nil until Sign.
	Signature *ssh.Signature
}

// CanonicalBytes is the voucher's content in SSH wire format: the string
// "zennet-payment-voucher", uint32 version, string lease, string payee,
// uint64 seq, uint64 total.
func (v *Voucher) CanonicalBytes() []byte {
	b := make([]byte, 0, 96+len(v.Lease)+len(v.Payee))
	b = signedjson.AppendString(b, "zennet-payment-voucher")
	b = binary.BigEndian.AppendUint32(b, VoucherVersion)
	b = signedjson.AppendString(b, v.Lease)
	b = signedjson.AppendString(b, v.Payee)
	b = binary.BigEndian.AppendUint64(b, v.Seq)
	return binary.BigEndian.AppendUint64(b, v.Total)
}

// Sign signs the voucher with the renter's key.
func (v *Voucher) Sign(signer ssh.Signer) error {
	sig, err := sshsig.Sign(signer, VoucherNamespace, v.CanonicalBytes())
	if err != nil {
		return fmt.Errorf("sign voucher: %w", err)
	}
	v.Signature = sig
	return nil
}

// Verify checks the voucher's signature against the renter's key.
func (v *Voucher) Verify(key ssh.PublicKey) error {
	if err := sshsig.Verify(key, VoucherNamespace, v.CanonicalBytes(), v.Signature); err != nil {
		return fmt.Errorf("%w: %w: %v", ErrVoucherRejected, ErrBadVoucherSignature, err)
	}
	return nil
}

// VoucherTerms are what the payee checks vouchers against.
type VoucherTerms struct {
	Lease string
	// Payee is the fingerprint of the payee's own host key.
	Payee string
	// Renter is the renter's public key, the lease's owner.
	Renter ssh.PublicKey
}

// CheckVoucher is the payee's test of voucher v given its current claim
// (nil before the first voucher). It returns nil, or an error wrapping
// ErrVoucherRejected and the reason's sentinel, when v is for another lease
// or payee, its signature does not verify with the renter's key, its
// sequence number is not above the claim's (a replay), or its total is
// below the claim's.
func CheckVoucher(t VoucherTerms, claim *Voucher, v Voucher) error {
	if v.Lease != t.Lease || v.Payee != t.Payee {
		return fmt.Errorf("%w: %w: voucher is for lease %q payee %q, not %q payee %q",
			ErrVoucherRejected, ErrVoucherLease, v.Lease, v.Payee, t.Lease, t.Payee)
	}
	if t.Renter == nil {
		return fmt.Errorf("%w: %w: no renter key to verify with", ErrVoucherRejected, ErrBadVoucherSignature)
	}
	if err := v.Verify(t.Renter); err != nil {
		return err
	}
	if claim != nil {
		if v.Seq <= claim.Seq {
			return fmt.Errorf("%w: %w: sequence number %d, the claim's is %d", ErrVoucherRejected, ErrVoucherReplay, v.Seq, claim.Seq)
		}
		if v.Total < claim.Total {
			return fmt.Errorf("%w: %w: total %d msat, the claim's is %d msat", ErrVoucherRejected, ErrVoucherTotal, v.Total, claim.Total)
		}
	}
	return nil
}

// voucherJSON is the wire form of a Voucher.
type voucherJSON struct {
	V     int             `json:"v"`
	Lease string          `json:"lease"`
	Payee string          `json:"payee"`
	Seq   uint64          `json:"seq"`
	Total uint64          `json:"total_msat"`
	Sig   *signedjson.Sig `json:"sig,omitempty"`
}

// MarshalJSON writes the voucher's wire form.
func (v Voucher) MarshalJSON() ([]byte, error) {
	if err := v.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(voucherJSON{V: VoucherVersion, Lease: v.Lease, Payee: v.Payee, Seq: v.Seq, Total: v.Total,
		Sig: signedjson.FromSignature(v.Signature)})
}

// UnmarshalJSON reads and validates the wire form; unknown fields are an
// error. It does not verify the signature.
func (v *Voucher) UnmarshalJSON(b []byte) error {
	var w voucherJSON
	if err := signedjson.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.V != VoucherVersion {
		return fmt.Errorf("voucher version %d, this build reads %d", w.V, VoucherVersion)
	}
	sig, err := w.Sig.Signature()
	if err != nil {
		return err
	}
	out := Voucher{Lease: w.Lease, Payee: w.Payee, Seq: w.Seq, Total: w.Total, Signature: sig}
	if err := out.validate(); err != nil {
		return err
	}
	*v = out
	return nil
}

func (v *Voucher) validate() error {
	if err := validLease(v.Lease); err != nil {
		return err
	}
	if len(v.Payee) == 0 || len(v.Payee) > 128 {
		return fmt.Errorf("payee of %d bytes", len(v.Payee))
	}
	for _, c := range []byte(v.Payee) {
		if c <= ' ' || c >= 0x7f {
			return fmt.Errorf("payee %q: bad character", v.Payee)
		}
	}
	if v.Seq == 0 {
		return errors.New("sequence number 0")
	}
	return nil
}

// validLease accepts what meter.Report accepts as a lease id: 1 to 64
// letters, digits, '-', '_' or '.'.
func validLease(id string) error {
	if len(id) == 0 || len(id) > 64 {
		return fmt.Errorf("lease id of %d bytes", len(id))
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("lease id %q: bad character", id)
		}
	}
	return nil
}

// EncodeVoucher returns the voucher as one line of JSON, newline included.
func EncodeVoucher(v Voucher) ([]byte, error) {
	b, err := signedjson.EncodeLine(v, MaxVoucherSize)
	if err != nil {
		return nil, fmt.Errorf("encode voucher: %w", err)
	}
	return b, nil
}

// DecodeVoucher parses and validates one encoded voucher. It does not
// verify the signature: CheckVoucher does.
func DecodeVoucher(b []byte) (Voucher, error) {
	var v Voucher
	if err := signedjson.DecodeLine(b, MaxVoucherSize, &v); err != nil {
		return Voucher{}, fmt.Errorf("decode voucher: %w", err)
	}
	return v, nil
}
