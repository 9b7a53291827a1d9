package market

import (
	"testing"

	"github.com/zennet/zennet/internal/testenv"
)

func TestLocalAddress(t *testing.T) {
	tests := []struct {
		addr  string
		local bool
	}{
		{"127.0.0.1:2222", true},
		{"[::1]:2222", true},
		{"0.0.0.0:2222", true},
		{":2222", true},
		{"localhost:2222", true},
		{"192.0.2.1:2222", false},
		{"[2001:db8::1]:2222", false},
		{"provider.example:2222", false},
		{"no port", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := localAddress(tt.addr); got != tt.local {
				t.Fatalf("localAddress(%q) = %v, want %v", tt.addr, got, tt.local)
			}
		})
	}
}

// A node on the network does not learn a peer at an address of its own
// machine from an announcement; a node of a market on this machine does.
func TestNodeLearnsLocalPeersOnlyWhenLocal(t *testing.T) {
	tests := []struct {
		name     string
		peers    []string
		announce string
		learn    bool
	}{
		{"on the network", []string{"192.0.2.7:2222"}, "", false},
		{"announcing a network address", nil, "192.0.2.8:2222", false},
		{"given a peer on this machine", []string{"127.0.0.1:3333"}, "", true},
		{"announcing an address on this machine", nil, "127.0.0.1:4444", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := NodeConfig{Signer: testenv.Signer(t), Peers: tt.peers}
			if tt.announce != "" {
				cfg.Announce = func() Announcement { return Announcement{Address: tt.announce} }
			}
			n := NewNode(cfg)
			if got := n.dialable("127.0.0.1:2222"); got != tt.learn {
				t.Fatalf("dialable(127.0.0.1:2222) = %v, want %v", got, tt.learn)
			}
			if !n.dialable("192.0.2.9:2222") {
				t.Fatal("a network address is not dialable")
			}
		})
	}
}
