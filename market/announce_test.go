package market

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/testenv"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func unsigned(s ssh.Signer, seq uint64, issued time.Time) Announcement {
	return Announcement{
		Version:          AnnouncementVersion,
		Provider:         ProviderString(s.PublicKey()),
		Address:          "alice.example:2222",
		Capacity:         Capacity{Leases: 8, MemoryBytes: 8 << 30, CPUs: 4, DiskBytes: 64 << 30},
		PricePerWorkMsat: 100, Score: 1.25, Calibration: "3f1c0ad2e9",
		Methods: []string{MethodEmbedded, MethodLightning},
		Seq:     seq, Issued: issued, Expires: issued.Add(time.Hour),
	}
}

// announce returns a minted (bits of work) and signed announcement.
func announce(t testing.TB, s ssh.Signer, seq uint64, issued time.Time, bits uint) Announcement {
	t.Helper()
	a := unsigned(s, seq, issued)
	if err := Mint(context.Background(), &a, bits); err != nil {
		t.Fatal(err)
	}
	if err := a.Sign(s); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAnnouncementRoundTrip(t *testing.T) {
	s := testenv.Signer(t)
	a := announce(t, s, 1, t0, 8)
	if Work(&a) < 8 {
		t.Fatalf("work %d after Mint(8)", Work(&a))
	}
	b, err := EncodeAnnouncement(a)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxAnnouncementSize {
		t.Fatalf("encoded announcement of %d bytes", len(b))
	}
	t.Logf("encoded: %d bytes: %s", len(b), b)
	got, err := DecodeAnnouncement(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.CanonicalBytes(), a.CanonicalBytes()) {
		t.Fatal("canonical bytes changed in a round trip")
	}
	if err := Check(&got, t0.Add(time.Minute), 8); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if got.Fingerprint() != ssh.FingerprintSHA256(s.PublicKey()) {
		t.Fatalf("fingerprint %q", got.Fingerprint())
	}
}

func TestCheck(t *testing.T) {
	s, other := testenv.Signer(t), testenv.Signer(t)
	now := t0.Add(10 * time.Minute)
	for _, tt := range []struct {
		name string
		make func() Announcement
		now  time.Time
		bits uint
		want error
	}{
		{"valid", func() Announcement { return announce(t, s, 1, t0, 8) }, now, 8, nil},
		{"valid with little skew", func() Announcement { return announce(t, s, 1, now.Add(time.Minute), 0) }, now, 0, nil},
		{"signed by another key", func() Announcement {
			a := unsigned(s, 1, t0)
			sig := announce(t, other, 1, t0, 0).Signature
			a.Signature = sig
			return a
		}, now, 0, ErrBadSignature},
		{"signed by another key, announced as its own", func() Announcement {
			a := unsigned(other, 1, t0)
			b := announce(t, s, 1, t0, 0)
			a.Signature = b.Signature
			return a
		}, now, 0, ErrBadSignature},
		{"price changed after signing", func() Announcement {
			a := announce(t, s, 1, t0, 0)
			a.PricePerWorkMsat = 1
			return a
		}, now, 0, ErrBadSignature},
		{"address changed after signing", func() Announcement {
			a := announce(t, s, 1, t0, 0)
			a.Address = "mallory.example:2222"
			return a
		}, now, 0, ErrBadSignature},
		{"nonce changed after signing", func() Announcement {
			a := announce(t, s, 1, t0, 0)
			a.Nonce++
			return a
		}, now, 0, ErrBadSignature},
		{"unsigned", func() Announcement {
			a := unsigned(s, 1, t0)
			return a
		}, now, 0, ErrBadSignature},
		{"expired", func() Announcement { return announce(t, s, 1, t0, 0) }, t0.Add(time.Hour), 0, ErrExpired},
		{"issued in the future", func() Announcement { return announce(t, s, 1, now.Add(3*time.Minute), 0) }, now, 0, ErrFuture},
		{"low work", func() Announcement {
			a := announce(t, s, 1, t0, 4)
			for Work(&a) >= 12 { // make sure the stamp is below 12 bits
				a.Seq++
				Mint(context.Background(), &a, 4)
				a.Sign(s)
			}
			return a
		}, now, 12, ErrWork},
		{"invalid: seq 0", func() Announcement {
			a := announce(t, s, 1, t0, 0)
			a.Seq = 0
			return a
		}, now, 0, ErrInvalid},
		{"invalid: valid for more than a day", func() Announcement {
			a := announce(t, s, 1, t0, 0)
			a.Expires = t0.Add(25 * time.Hour)
			return a
		}, now, 0, ErrInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.make()
			err := Check(&a, tt.now, tt.bits)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Check err = %v, want %v", err, tt.want)
			}
			for _, other := range []error{ErrInvalid, ErrBadSignature, ErrExpired, ErrFuture, ErrWork} {
				if other != tt.want && errors.Is(err, other) {
					t.Fatalf("Check err = %v wraps %v too", err, other)
				}
			}
			t.Logf("%v", err)
		})
	}
}

func TestValidate(t *testing.T) {
	s := testenv.Signer(t)
	rsaLike := func(a *Announcement) { a.Provider += " comment" }
	for _, tt := range []struct {
		name string
		edit func(a *Announcement)
	}{
		{"version", func(a *Announcement) { a.Version = 2 }},
		{"no provider", func(a *Announcement) { a.Provider = "" }},
		{"provider with comment", rsaLike},
		{"provider garbage", func(a *Announcement) { a.Provider = "ssh-ed25519 AAAA" }},
		{"address without port", func(a *Announcement) { a.Address = "alice.example" }},
		{"address port 0", func(a *Announcement) { a.Address = "alice.example:0" }},
		{"address port 65536", func(a *Announcement) { a.Address = "alice.example:65536" }},
		{"address port name", func(a *Announcement) { a.Address = "alice.example:ssh" }},
		{"address empty host", func(a *Announcement) { a.Address = ":2222" }},
		{"address bad host", func(a *Announcement) { a.Address = "alice example:2222" }},
		{"address host with slash", func(a *Announcement) { a.Address = "a/b:2222" }},
		{"address empty label", func(a *Announcement) { a.Address = "a..b:2222" }},
		{"address bad ipv6", func(a *Announcement) { a.Address = "[::zz]:2222" }},
		{"market address without peer", func(a *Announcement) { a.Address = "/ip4/192.0.2.1/tcp/4001" }},
		{"market address garbage", func(a *Announcement) { a.Address = "/ip4/192.0.2.1/tcp/x" }},
		{"market address too long", func(a *Announcement) {
			a.Address = "/dns4/" + strings.Repeat("a", 250) + "/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
		}},
		{"negative leases", func(a *Announcement) { a.Capacity.Leases = -1 }},
		{"negative memory", func(a *Announcement) { a.Capacity.MemoryBytes = -1 }},
		{"negative disk", func(a *Announcement) { a.Capacity.DiskBytes = -1 }},
		{"negative cpus", func(a *Announcement) { a.Capacity.CPUs = -1 }},
		{"negative zero price", func(a *Announcement) { a.PricePerWorkMsat = negZero() }},
		{"infinite score", func(a *Announcement) { a.Score = inf() }},
		{"NaN price", func(a *Announcement) { a.PricePerWorkMsat = nan() }},
		{"huge price", func(a *Announcement) { a.PricePerWorkMsat = 1e300 }},
		{"calibration space", func(a *Announcement) { a.Calibration = "a b" }},
		{"calibration long", func(a *Announcement) { a.Calibration = strings.Repeat("a", 129) }},
		{"no methods", func(a *Announcement) { a.Methods = nil }},
		{"unknown method", func(a *Announcement) { a.Methods = []string{"paypal"} }},
		{"method twice", func(a *Announcement) { a.Methods = []string{"embedded", "embedded"} }},
		{"seq 0", func(a *Announcement) { a.Seq = 0 }},
		{"expires before issued", func(a *Announcement) { a.Expires = a.Issued }},
		{"too long", func(a *Announcement) { a.Expires = a.Issued.Add(MaxValidity + time.Nanosecond) }},
		{"before 1970", func(a *Announcement) { a.Issued = time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := unsigned(s, 1, t0)
			a.Version = AnnouncementVersion
			tt.edit(&a)
			if err := a.validate(); !errors.Is(err, ErrInvalid) {
				t.Fatalf("validate err = %v, want ErrInvalid", err)
			} else {
				t.Log(err)
			}
			if _, err := EncodeAnnouncement(a); err == nil {
				t.Fatal("EncodeAnnouncement accepted it")
			}
		})
	}
	for _, addr := range []string{"alice.example:2222", "127.0.0.1:1", "[::1]:2222", "localhost:65535", "a-b.c_d.example:22"} {
		a := unsigned(s, 1, t0)
		a.Version = AnnouncementVersion
		a.Address = addr
		if err := a.validate(); err != nil {
			t.Errorf("address %q: %v", addr, err)
		}
	}
}

func TestProviderKeyTypes(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	a := announce(t, s, 1, t0, 0)
	b, err := EncodeAnnouncement(a)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeAnnouncement(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(&got, t0, 0); err != nil {
		t.Fatalf("ECDSA: %v", err)
	}
	// Sign refuses a key that is not the announced one.
	other := testenv.Signer(t)
	if err := a.Sign(other); err == nil {
		t.Fatal("signed with another key than the provider's")
	}
}

func TestDecodeStrict(t *testing.T) {
	s := testenv.Signer(t)
	a := announce(t, s, 1, t0, 0)
	b, _ := json.Marshal(a)
	var m map[string]any
	json.Unmarshal(b, &m)
	edit := func(f func(m map[string]any)) []byte {
		c := map[string]any{}
		for k, v := range m {
			c[k] = v
		}
		f(c)
		out, _ := json.Marshal(c)
		return out
	}
	for name, in := range map[string][]byte{
		"unknown field":   edit(func(m map[string]any) { m["extra"] = 1 }),
		"no capacity":     edit(func(m map[string]any) { delete(m, "capacity") }),
		"version 2":       edit(func(m map[string]any) { m["v"] = 2 }),
		"unknown nested":  edit(func(m map[string]any) { m["capacity"] = map[string]any{"leases": 1, "gpus": 2} }),
		"trailing data":   append(append([]byte{}, b...), []byte(" {}")...),
		"trailing brace":  append(append([]byte{}, b...), '}'),
		"bad signature":   edit(func(m map[string]any) { m["sig"] = map[string]any{"format": "", "blob": "AA=="} }),
		"too large":       edit(func(m map[string]any) { m["calibration"] = strings.Repeat("a", 3000) }),
		"negative nonce":  edit(func(m map[string]any) { m["nonce"] = -1 }),
		"string price":    edit(func(m map[string]any) { m["price_per_work_msat"] = "1" }),
		"not json":        []byte("announce!"),
		"empty":           nil,
		"null":            []byte("null"),
		"unknown method":  edit(func(m map[string]any) { m["methods"] = []string{"cash"} }),
		"negative leases": edit(func(m map[string]any) { m["capacity"] = map[string]any{"leases": -1} }),
	} {
		if _, err := DecodeAnnouncement(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := DecodeAnnouncement(append(b, '\n')); err != nil {
		t.Errorf("with newline: %v", err)
	}
}

func TestMintCancel(t *testing.T) {
	s := testenv.Signer(t)
	a := unsigned(s, 1, t0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Mint(ctx, &a, 64); !errors.Is(err, context.Canceled) {
		t.Fatalf("Mint err = %v, want context.Canceled", err)
	}
	if err := Mint(context.Background(), &a, 257); err == nil {
		t.Fatal("Mint(257 bits) succeeded")
	}
}

func TestRelativeScore(t *testing.T) {
	got, err := RelativeScore([]float64{2, 8, 0}, []float64{1, 2, 5})
	if err != nil {
		t.Fatal(err)
	}
	if got < 2.8284 || got > 2.8285 { // sqrt(2*4)
		t.Fatalf("RelativeScore = %v, want sqrt(8)", got)
	}
	if _, err := RelativeScore([]float64{0}, []float64{1}); err == nil {
		t.Fatal("no usable step, no error")
	}
	if _, err := RelativeScore([]float64{1}, nil); err == nil {
		t.Fatal("length mismatch, no error")
	}
}

func FuzzDecodeAnnouncement(f *testing.F) {
	s := testenv.Signer(f)
	a := announce(f, s, 7, t0, 0)
	b, _ := EncodeAnnouncement(a)
	f.Add(b)
	a.Signature = nil
	b, _ = EncodeAnnouncement(a)
	f.Add(b)
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":1,"provider":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO","address":"[::1]:1","capacity":{"leases":0,"memory_bytes":0,"cpus":0,"disk_bytes":0},"price_per_work_msat":0,"score":0,"methods":["embedded"],"seq":1,"issued":"1970-01-01T00:00:00Z","expires":"1970-01-02T00:00:00Z","nonce":0}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		a, err := DecodeAnnouncement(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		out, err := EncodeAnnouncement(a)
		if err != nil {
			t.Fatalf("decoded but cannot encode: %v", err)
		}
		b, err := DecodeAnnouncement(out)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(a.CanonicalBytes(), b.CanonicalBytes()) {
			t.Fatal("canonical bytes changed in a round trip")
		}
		_ = Work(&a)
		_ = Check(&a, t0, 0)
	})
}

// BenchmarkMint mints 16-bit stamps and reports the search's rate in
// hashes per second (nonces tried), the figure to choose a difficulty by:
// a stamp of k bits costs 2^k hashes on average.
func BenchmarkMint(b *testing.B) {
	s := testenv.Signer(b)
	var hashes uint64
	for i := 0; i < b.N; i++ {
		a := unsigned(s, uint64(i+1), t0)
		if err := Mint(context.Background(), &a, 16); err != nil {
			b.Fatal(err)
		}
		hashes += a.Nonce + 1
	}
	b.ReportMetric(float64(hashes)/b.Elapsed().Seconds(), "hashes/s")
	b.ReportMetric(float64(hashes)/float64(b.N), "hashes/op")
}

// BenchmarkWork is a receiver's cost of measuring a stamp.
func BenchmarkWork(b *testing.B) {
	s := testenv.Signer(b)
	a := unsigned(s, 1, t0)
	for i := 0; i < b.N; i++ {
		a.Nonce = uint64(i)
		_ = Work(&a)
	}
}

func BenchmarkCheck(b *testing.B) {
	s := testenv.Signer(b)
	a := announce(b, s, 1, t0, 0)
	for i := 0; i < b.N; i++ {
		if err := Check(&a, t0, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func negZero() float64 { z := 0.0; return -z }
func inf() float64     { z := 0.0; return 1 / z }
func nan() float64     { z := 0.0; return z / z }

func TestSameOffer(t *testing.T) {
	base := Announcement{Address: "192.0.2.1:2222", Capacity: Capacity{Leases: 2, MemoryBytes: 1 << 30, CPUs: 2, DiskBytes: 100 << 30},
		PricePerWorkMsat: 100, Score: 1, Calibration: "abc", Methods: []string{"embedded"}, Seq: 1}
	tests := []struct {
		name   string
		change func(*Announcement)
		same   bool
	}{
		{"identical", func(*Announcement) {}, true},
		{"another seq and validity", func(a *Announcement) { a.Seq, a.Expires = 2, t0 }, true},
		{"disk within 1%", func(a *Announcement) { a.Capacity.DiskBytes -= 1 << 20 }, true},
		{"disk beyond 1%", func(a *Announcement) { a.Capacity.DiskBytes -= 2 << 30 }, false},
		{"memory beyond 1%", func(a *Announcement) { a.Capacity.MemoryBytes /= 2 }, false},
		{"leases", func(a *Announcement) { a.Capacity.Leases = 0 }, false},
		{"price", func(a *Announcement) { a.PricePerWorkMsat = 90 }, false},
		{"address", func(a *Announcement) { a.Address = "192.0.2.2:2222" }, false},
		{"methods", func(a *Announcement) { a.Methods = []string{"lightning"} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := base
			b.Methods = slices.Clone(base.Methods)
			tt.change(&b)
			if got := SameOffer(base, b); got != tt.same {
				t.Fatalf("SameOffer = %v, want %v", got, tt.same)
			}
		})
	}
}

// TestMarketAddress: a provider behind a NAT announces the multiaddr of
// its market node (through a relay); it is checked as an address is.
func TestMarketAddress(t *testing.T) {
	s := testenv.Signer(t)
	a := unsigned(s, 1, t0)
	a.Address = "/ip4/192.0.2.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
	if err := a.Sign(s); err != nil {
		t.Fatal(err)
	}
	b, err := EncodeAnnouncement(a)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeAnnouncement(b)
	if err != nil || got.Address != a.Address {
		t.Fatalf("DecodeAnnouncement = %q, %v", got.Address, err)
	}
}
