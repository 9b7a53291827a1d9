// Package signedjson is the one wire form of zennet's signed messages
// (usage reports, payment vouchers, market announcements, calibration
// sets): canonical bytes in SSH wire format for the signature to cover
// (AppendString), the signature as a JSON object (Sig), and JSON decoded
// strictly, one message to a line (EncodeLine, DecodeLine). Signing and
// verifying are internal/sshsig's.
package signedjson

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/ssh"
)

// Bounds of a Sig that decodes: room for any SSH signature there is, with
// nothing else smuggled in.
const (
	maxFormat = 64
	maxBlob   = 16 << 10
	maxRest   = 1 << 10
)

// ErrMalformedSignature means a Sig that no SSH signature can be: no
// format or blob, or a part out of bounds.
var ErrMalformedSignature = errors.New("malformed signature")

// ErrTooBig means a message is over the size its kind allows.
var ErrTooBig = errors.New("message too big")

// AppendString appends s as an SSH wire string (uint32 length, then the
// bytes): the building block of every message's canonical bytes.
func AppendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// Sig is the JSON form of an ssh.Signature.
type Sig struct {
	Format string `json:"format"`
	Blob   []byte `json:"blob"`
	Rest   []byte `json:"rest,omitempty"`
}

// FromSignature is sig's JSON form, nil for nil.
func FromSignature(sig *ssh.Signature) *Sig {
	if sig == nil {
		return nil
	}
	return &Sig{Format: sig.Format, Blob: sig.Blob, Rest: sig.Rest}
}

// Signature is the ssh.Signature s holds, nil for nil. It does not verify
// anything; a Sig no signature can be is ErrMalformedSignature.
func (s *Sig) Signature() (*ssh.Signature, error) {
	if s == nil {
		return nil, nil
	}
	if s.Format == "" || len(s.Format) > maxFormat || len(s.Blob) == 0 || len(s.Blob) > maxBlob || len(s.Rest) > maxRest {
		return nil, ErrMalformedSignature
	}
	return &ssh.Signature{Format: s.Format, Blob: s.Blob, Rest: s.Rest}, nil
}

// Unmarshal decodes the JSON value b into v strictly: a field v does not
// have, or anything after the value, is an error.
func Unmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data")
	}
	return nil
}

// EncodeLine returns v as one line of JSON, newline included. The JSON
// (without the newline) must be at most max bytes.
func EncodeLine(v any, max int) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(b) > max {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrTooBig, len(b), max)
	}
	return append(b, '\n'), nil
}

// DecodeLine decodes one line of JSON (its newline is optional) of at
// most max bytes, newline not counted, into v with json.Unmarshal: v's
// own UnmarshalJSON decides what it accepts.
func DecodeLine(b []byte, max int, v any) error {
	b = bytes.TrimSuffix(b, []byte("\n"))
	if len(b) > max {
		return fmt.Errorf("%w: %d bytes exceeds %d", ErrTooBig, len(b), max)
	}
	return json.Unmarshal(b, v)
}
