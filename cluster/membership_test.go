package cluster

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/testenv"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func fingerprint(t testing.TB) string {
	return gossh.FingerprintSHA256(testenv.Signer(t).PublicKey())
}

// sample is a signed membership of three hosts on two providers.
func sample(t testing.TB, renter gossh.Signer, p1, p2 string) Membership {
	t.Helper()
	subnet := netip.MustParsePrefix("10.77.0.0/16")
	m := Membership{Session: "s-0123abcd", Subnet: subnet, Seq: 1, Expires: t0.Add(5 * time.Minute)}
	for i, p := range []string{p1, p1, p2} {
		a, err := HostAddr(subnet, i+1)
		if err != nil {
			t.Fatal(err)
		}
		ep := "127.0.0.1:2222"
		if p == p2 {
			ep = "127.0.0.1:2223"
		}
		m.Members = append(m.Members, Member{Name: "zennet-" + string(rune('1'+i)), Addr: a, Lease: "zn-lease" + string(rune('a'+i)), Provider: p, Endpoint: ep,
			HostKey: strings.TrimSpace(string(gossh.MarshalAuthorizedKey(testenv.Signer(t).PublicKey()))), Slots: 1 + i/2})
	}
	if err := m.Sign(renter); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMembershipRoundTrip(t *testing.T) {
	renter := testenv.Signer(t)
	m := sample(t, renter, fingerprint(t), fingerprint(t))
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.CanonicalBytes(), m.CanonicalBytes()) {
		t.Fatal("canonical bytes changed in a round trip")
	}
	if err := Check(got, renter.PublicKey(), nil, t0); err != nil {
		t.Fatal(err)
	}
}

func TestMembershipCheck(t *testing.T) {
	renter, stranger := testenv.Signer(t), testenv.Signer(t)
	p1, p2 := fingerprint(t), fingerprint(t)
	m := sample(t, renter, p1, p2)
	held := m
	newer := m
	newer.Seq = 2
	newer.Members = newer.Members[:2]
	if err := newer.Sign(renter); err != nil {
		t.Fatal(err)
	}
	tampered := newer
	tampered.Members = append([]Member{}, newer.Members...)
	tampered.Members[1].Provider = p2 // the signature no longer covers it
	byStranger := newer
	if err := byStranger.Sign(stranger); err != nil {
		t.Fatal(err)
	}
	otherSubnet := newer
	otherSubnet.Subnet = netip.MustParsePrefix("10.78.0.0/16")
	otherSubnet.Members = nil
	for i, mb := range newer.Members {
		mb.Addr, _ = HostAddr(otherSubnet.Subnet, i+1)
		otherSubnet.Members = append(otherSubnet.Members, mb)
	}
	if err := otherSubnet.Sign(renter); err != nil {
		t.Fatal(err)
	}
	farFuture := newer
	farFuture.Expires = t0.Add(time.Hour)
	if err := farFuture.Sign(renter); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		m    Membership
		held *Membership
		now  time.Time
		want error
		text string
	}{
		{"newer", newer, &held, t0, nil, ""},
		{"the same again (a status request)", m, &held, t0, nil, ""},
		{"another with the same sequence", func() Membership { x := m; x.Members = x.Members[:1]; x.Sign(renter); return x }(), &held, t0, ErrStale, "sequence 1, already at 1"},
		{"expired", newer, &held, t0.Add(5 * time.Minute), ErrStale, "expired"},
		{"signed by a stranger", byStranger, &held, t0, ErrForged, ""},
		{"changed after signing", tampered, &held, t0, ErrForged, ""},
		{"another subnet", otherSubnet, &held, t0, ErrRejected, "held"},
		{"valid for too long", farFuture, &held, t0, ErrRejected, "more than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.m, renter.PublicKey(), tt.held, tt.now)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("Check = %v, want %v mentioning %q", err, tt.want, tt.text)
			}
		})
	}
}

func TestMembershipDecodeRejects(t *testing.T) {
	renter := testenv.Signer(t)
	good, err := Encode(sample(t, renter, fingerprint(t), fingerprint(t)))
	if err != nil {
		t.Fatal(err)
	}
	g := string(good)
	for _, tt := range []struct{ name, in, want string }{
		{"not JSON", "{", ""},
		{"unknown field", strings.Replace(g, `"v":1`, `"v":1,"x":2`, 1), "unknown field"},
		{"other version", strings.Replace(g, `"v":1`, `"v":2`, 1), "version 2"},
		{"public subnet", strings.Replace(g, `"10.77.0.0/16"`, `"8.8.0.0/16"`, 1), "10.0.0.0/8"},
		{"subnet over the sandboxes' own", strings.Replace(g, `"10.77.0.0/16"`, `"10.0.0.0/16"`, 1), "10.0.2.0/24"},
		{"address outside the subnet", strings.Replace(g, `"10.77.0.2"`, `"10.99.0.2"`, 1), "not in the session's subnet"},
		{"duplicate address", strings.Replace(g, `"10.77.0.2"`, `"10.77.0.1"`, 1), "twice"},
		{"broadcast address", strings.Replace(g, `"10.77.0.2"`, `"10.77.255.255"`, 1), "broadcast"},
		{"bad name", strings.Replace(g, `"zennet-2"`, `"Zennet 2"`, 1), "member name"},
		{"bad provider", strings.Replace(g, `"SHA256:`, `"MD5:`, 1), "fingerprint"},
		{"bad endpoint", strings.Replace(g, `"127.0.0.1:2222"`, `"nowhere"`, 1), "HOST:PORT"},
		{"market endpoint without a peer", strings.Replace(g, `"127.0.0.1:2222"`, `"/ip4/192.0.2.1/tcp/4001"`, 1), "/p2p/ID"},
		{"bad market endpoint", strings.Replace(g, `"127.0.0.1:2222"`, `"/ip4/192.0.2.1/tcp/x"`, 1), "endpoint"},
		{"sequence 0", strings.Replace(g, `"seq":1`, `"seq":0`, 1), "sequence number 0"},
		{"oversized", `{"v":1,"pad":"` + strings.Repeat("x", MaxSize) + `"}`, "too big"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.in))
			if err == nil || !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decode = %v, want rejected mentioning %q", err, tt.want)
			}
		})
	}
}

func TestHostAddr(t *testing.T) {
	p := netip.MustParsePrefix("10.77.0.0/16")
	for _, tt := range []struct {
		i    int
		want string
	}{{1, "10.77.0.1"}, {255, "10.77.0.255"}, {256, "10.77.1.0"}, {65534, "10.77.255.254"}} {
		a, err := HostAddr(p, tt.i)
		if err != nil || a.String() != tt.want {
			t.Errorf("HostAddr(%d) = %v, %v; want %s", tt.i, a, err, tt.want)
		}
	}
	for _, i := range []int{0, -1, 65535} {
		if _, err := HostAddr(p, i); err == nil {
			t.Errorf("HostAddr(%d) accepted", i)
		}
	}
}

func FuzzDecode(f *testing.F) {
	renter := testenv.Signer(f)
	good, err := Encode(sample(f, renter, fingerprint(f), fingerprint(f)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		// What decodes encodes again, to the same canonical bytes.
		again, err := Encode(m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, err := Decode(again)
		if err != nil {
			t.Fatalf("decode the re-encoded: %v", err)
		}
		if !bytes.Equal(m.CanonicalBytes(), m2.CanonicalBytes()) {
			t.Fatal("canonical bytes changed")
		}
	})
}

func TestSessionFiles(t *testing.T) {
	renter := testenv.Signer(t)
	m := sample(t, renter, fingerprint(t), fingerprint(t))
	f := SessionFiles(m)
	kh := string(f.InDir[KnownHostsFile])
	for i, mb := range m.Members {
		if want := mb.Name + "," + mb.Addr.String() + " " + mb.HostKey + "\n"; !strings.Contains(kh, want) {
			t.Errorf("known_hosts lacks member %d: %q in\n%s", i, want, kh)
		}
	}
	if got := string(f.InDir[HostfileFile]); got != "zennet-1 slots=1\nzennet-2 slots=1\nzennet-3 slots=2\n" {
		t.Errorf("hostfile:\n%s", got)
	}
	if got := string(f.InDir[LoginFile]); !strings.Contains(got, "2/ssh zennet-3\n") {
		t.Errorf("sshloginfile:\n%s", got)
	}
	if got := string(f.EtcHosts); !strings.Contains(got, "10.77.0.2\tzennet-2\n") {
		t.Errorf("/etc/hosts lines:\n%s", got)
	}
	cfg, mpi := StaticFiles("s1", netip.MustParsePrefix("10.77.0.0/16"))
	for _, want := range []string{"Host zennet-* 10.77.*\n", "IdentityFile /root/.zennet/id_zennet", "UserKnownHostsFile /root/.zennet/known_hosts", "StrictHostKeyChecking yes", "Ciphers aes128-gcm@openssh.com,"} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("ssh_config lacks %q:\n%s", want, cfg)
		}
	}
	if !strings.Contains(string(mpi), "btl_tcp_if_include = eth1\n") || !strings.Contains(string(mpi), "oob_tcp_if_include = eth1\n") {
		t.Errorf("mca params:\n%s", mpi)
	}
	if g := subnetGlob(netip.MustParsePrefix("10.77.128.0/25")); g != "10.77.128.*" {
		t.Errorf("glob of a /25: %s", g)
	}
}
