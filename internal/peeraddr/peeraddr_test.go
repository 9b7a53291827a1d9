package peeraddr

import "testing"

func TestCheck(t *testing.T) {
	const id = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"/ip4/192.0.2.1/tcp/4001/p2p/" + id, true},
		{"/ip4/192.0.2.1/tcp/4001/p2p/" + id + "/p2p-circuit/p2p/" + id, true},
		{"/ip4/192.0.2.1/tcp/4001/p2p/" + id + "/p2p-circuit", false},
		{"/ip4/192.0.2.1/tcp/4001", false},
		{"/ip4/192.0.2.1/tcp/x/p2p/" + id, false},
		{"/", false},
		{"/p2p/notanid", false},
	} {
		if err := Check(tt.in); (err == nil) != tt.ok {
			t.Errorf("Check(%q) = %v, want ok %v", tt.in, err, tt.ok)
		}
	}
}

func FuzzCheck(f *testing.F) {
	f.Add("/ip4/192.0.2.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA")
	f.Add("/ip6/::1/udp/1/quic-v1")
	f.Fuzz(func(t *testing.T, s string) { Check(s) })
}
