package market

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/testenv"
)

func TestDirectoryAdd(t *testing.T) {
	s := testenv.Signer(t)
	d := NewDirectory(0)
	now := t0.Add(time.Minute)
	a2 := announce(t, s, 2, t0, 0)
	for _, tt := range []struct {
		name  string
		a     Announcement
		bits  uint
		added bool
		err   error
		seq   uint64
	}{
		{"new", a2, 0, true, nil, 2},
		{"duplicate", a2, 0, false, nil, 2},
		{"stale", announce(t, s, 1, t0, 0), 0, false, nil, 2},
		{"forged newer", func() Announcement { a := announce(t, s, 3, t0, 0); a.Address = "mallory.example:22"; return a }(), 0, false, ErrBadSignature, 2},
		{"too little work", func() Announcement {
			a := announce(t, s, 3, t0, 0)
			for Work(&a) >= 10 {
				a.Issued = a.Issued.Add(time.Second)
				a.Sign(s)
			}
			return a
		}(), 10, false, ErrWork, 2},
		{"newer", announce(t, s, 3, t0, 0), 0, true, nil, 3},
		{"newer but expired", announce(t, s, 4, t0.Add(-2*time.Hour), 0), 0, false, ErrExpired, 3},
	} {
		added, err := d.Add(tt.a, now, tt.bits)
		if added != tt.added || !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
			t.Errorf("%s: Add = %v, %v; want %v, %v", tt.name, added, err, tt.added, tt.err)
		}
		got, ok := d.Get(tt.a.Provider)
		if !ok || got.Seq != tt.seq {
			t.Errorf("%s: Get = seq %d, %v; want seq %d", tt.name, got.Seq, ok, tt.seq)
		}
	}
	if got, ok := d.Get(ssh.FingerprintSHA256(s.PublicKey())); !ok || got.Seq != 3 {
		t.Errorf("Get by fingerprint = %d, %v", got.Seq, ok)
	}
	if _, ok := d.Get("SHA256:nobody"); ok {
		t.Error("Get of an unknown key succeeded")
	}
	if d.Len() != 1 {
		t.Errorf("Len = %d", d.Len())
	}
}

func TestDirectoryBoundAndExpiry(t *testing.T) {
	d := NewDirectory(3)
	now := t0
	var keys []ssh.Signer
	for i := 0; i < 5; i++ {
		keys = append(keys, testenv.Signer(t))
	}
	withExpiry := func(s ssh.Signer, valid time.Duration) Announcement {
		a := unsigned(s, 1, t0)
		a.Address = fmt.Sprintf("p%d.example:2222", len(keys))
		a.Expires = t0.Add(valid)
		a.Sign(s)
		return a
	}
	for i, valid := range []time.Duration{2 * time.Hour, time.Hour, 3 * time.Hour} {
		if ok, err := d.Add(withExpiry(keys[i], valid), now, 0); !ok || err != nil {
			t.Fatalf("Add %d: %v, %v", i, ok, err)
		}
	}
	// Full: one that expires sooner than all is not added.
	if ok, err := d.Add(withExpiry(keys[3], 30*time.Minute), now, 0); ok || err != nil {
		t.Fatalf("Add of the soonest to expire when full = %v, %v", ok, err)
	}
	// One that expires later evicts the soonest (keys[1], 1h).
	if ok, err := d.Add(withExpiry(keys[4], 4*time.Hour), now, 0); !ok || err != nil {
		t.Fatalf("Add when full = %v, %v", ok, err)
	}
	if _, ok := d.Get(ProviderString(keys[1].PublicKey())); ok {
		t.Fatal("the soonest to expire was not evicted")
	}
	if d.Len() != 3 {
		t.Fatalf("Len = %d, want 3", d.Len())
	}
	// A newer announcement of a known provider replaces it even when full.
	a := withExpiry(keys[0], time.Minute)
	a.Seq = 2
	a.Sign(keys[0])
	if ok, err := d.Add(a, now, 0); !ok || err != nil {
		t.Fatalf("superseding when full = %v, %v", ok, err)
	}
	if n := len(d.List(t0.Add(2 * time.Minute))); n != 2 {
		t.Fatalf("List after one expired = %d entries, want 2", n)
	}
	if n := d.Expire(t0.Add(2 * time.Minute)); n != 1 {
		t.Fatalf("Expire = %d, want 1", n)
	}
	if n := d.Expire(t0.Add(5 * time.Hour)); n != 2 || d.Len() != 0 {
		t.Fatalf("Expire = %d, Len %d", n, d.Len())
	}
}

func TestDirectoryList(t *testing.T) {
	d := NewDirectory(0)
	for _, addr := range []string{"c.example:1", "a.example:1", "b.example:1", "a.example:1"} {
		s := testenv.Signer(t)
		a := unsigned(s, 1, t0)
		a.Address = addr
		a.Sign(s)
		if _, err := d.Add(a, t0, 0); err != nil {
			t.Fatal(err)
		}
	}
	l := d.List(t0)
	var got []string
	for i, a := range l {
		got = append(got, a.Address)
		if i > 0 && l[i-1].Address == a.Address && l[i-1].Provider > a.Provider {
			t.Fatal("ties not sorted by provider")
		}
	}
	if strings.Join(got, " ") != "a.example:1 a.example:1 b.example:1 c.example:1" {
		t.Fatalf("List order %v", got)
	}
	// The list is a copy.
	l[0].Methods[0] = "x"
	if d.List(t0)[0].Methods[0] == "x" {
		t.Fatal("List shares memory with the directory")
	}
}

func TestDirectorySaveLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "directory.json")
	d := NewDirectory(0)
	var signers []ssh.Signer
	for i := 0; i < 4; i++ {
		s := testenv.Signer(t)
		signers = append(signers, s)
		a := unsigned(s, 1, t0)
		a.Address = fmt.Sprintf("p%d.example:2222", i)
		if i == 0 {
			a.Expires = t0.Add(10 * time.Minute)
		}
		Mint(t.Context(), &a, 4)
		a.Sign(s)
		if ok, err := d.Add(a, t0, 0); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if err := d.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	// Tamper with one entry: change its address without re-signing.
	b, _ := os.ReadFile(path)
	victim, _ := d.Get(ProviderString(signers[1].PublicKey()))
	if !strings.Contains(string(b), `"p1.example:2222"`) {
		t.Fatalf("no p1 in %s", b)
	}
	b = []byte(strings.Replace(string(b), `"p1.example:2222"`, `"mallory.example:2222"`, 1))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	d2 := NewDirectory(0)
	added, dropped, err := d2.Load(path, t0.Add(30*time.Minute), 4)
	if err != nil {
		t.Fatal(err)
	}
	if added != 2 || dropped != 2 { // one expired, one forged
		t.Fatalf("Load = %d added, %d dropped; want 2, 2", added, dropped)
	}
	if _, ok := d2.Get(victim.Provider); ok {
		t.Fatal("tampered entry loaded")
	}
	// Missing is empty; garbage is an error.
	if a, dr, err := NewDirectory(0).Load(filepath.Join(dir, "none.json"), t0, 0); a != 0 || dr != 0 || err != nil {
		t.Fatalf("missing file: %d %d %v", a, dr, err)
	}
	os.WriteFile(path, []byte(`{"format":"zennet-directory","version":1,"announcements":[],"x":1}`), 0o600)
	if _, _, err := NewDirectory(0).Load(path, t0, 0); err == nil {
		t.Fatal("unknown field loaded")
	}
	os.WriteFile(path, []byte(`{"format":"other","version":1,"announcements":[]}`), 0o600)
	if _, _, err := NewDirectory(0).Load(path, t0, 0); err == nil {
		t.Fatal("other format loaded")
	}
	// Leftover temporary files: none.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("temporary file %s left", e.Name())
		}
	}
}

func TestDirectoryConcurrent(t *testing.T) {
	d := NewDirectory(8)
	var signers []ssh.Signer
	for i := 0; i < 12; i++ {
		signers = append(signers, testenv.Signer(t))
	}
	var anns [][]Announcement
	for _, s := range signers {
		var l []Announcement
		for seq := uint64(1); seq <= 5; seq++ {
			a := unsigned(s, seq, t0)
			a.Expires = t0.Add(time.Duration(seq) * time.Hour)
			a.Sign(s)
			l = append(l, a)
		}
		anns = append(anns, l)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			for i := range anns {
				for j := range anns[i] {
					a := anns[(i+g)%len(anns)][(j+g)%5]
					if _, err := d.Add(a, t0, 0); err != nil {
						t.Error(err)
					}
					d.List(t0)
					d.Get(a.Provider)
				}
			}
		})
	}
	wg.Wait()
	if d.Len() > 8 {
		t.Fatalf("Len %d over the bound", d.Len())
	}
	for _, a := range d.List(t0) {
		if a.Seq != 5 {
			t.Errorf("provider kept at seq %d, want 5", a.Seq)
		}
	}
}

func BenchmarkDirectoryAdd(b *testing.B) {
	const providers = 1000
	var signers []ssh.Signer
	for i := 0; i < providers; i++ {
		signers = append(signers, testenv.Signer(b))
	}
	anns := make([]Announcement, b.N)
	for i := range anns {
		s := signers[i%providers]
		a := unsigned(s, uint64(i/providers+1), t0)
		a.Address = fmt.Sprintf("p%d.example:2222", i%providers)
		a.Sign(s)
		anns[i] = a
	}
	d := NewDirectory(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ok, err := d.Add(anns[i], t0, 0); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkDirectoryAddFull(b *testing.B) {
	// Every Add evicts: the directory is full of entries that expire
	// sooner than each new one.
	d := NewDirectory(MaxEntries)
	for i := 0; i < MaxEntries; i++ {
		s := testenv.Signer(b)
		a := unsigned(s, 1, t0)
		a.Expires = t0.Add(time.Hour + time.Duration(i)*time.Millisecond)
		a.Sign(s)
		if ok, err := d.Add(a, t0, 0); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	anns := make([]Announcement, b.N)
	for i := range anns {
		s := testenv.Signer(b)
		a := unsigned(s, 1, t0)
		a.Expires = t0.Add(2*time.Hour + time.Duration(i)*time.Millisecond)
		a.Sign(s)
		anns[i] = a
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ok, err := d.Add(anns[i], t0, 0); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
