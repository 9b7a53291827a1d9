package netsandbox

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Service is a TCP or UDP service on the provider published into every
// sandbox network: reachable from inside whatever the policy says, at a
// virtual IP of its own, and under Name.Domain when it has a name.
type Service struct {
	// Name is a DNS label; the sandbox resolves Name and Name.Domain to the
	// service's virtual IP. Services with the same name share one virtual
	// IP and differ in their ports. Empty means a virtual IP of its own and
	// no name.
	Name string
	// Port is the port inside the sandbox; 0 means Target's port.
	Port uint16
	// Target is HOST:PORT on the provider, HOST an IP address or a name the
	// provider resolves when the sandbox connects.
	Target string
}

// ParseService parses a published service written [NAME[:PORT]=]HOST:PORT,
// for example "127.0.0.1:8080", "web=127.0.0.1:8080" or
// "web:80=127.0.0.1:8080".
func ParseService(s string) (Service, error) {
	var svc Service
	target := s
	if name, t, ok := strings.Cut(s, "="); ok {
		target = t
		if n, p, ok := strings.Cut(name, ":"); ok {
			port, err := parsePort(p)
			if err != nil {
				return Service{}, fmt.Errorf("published service %q: %w", s, err)
			}
			svc.Port = port
			name = n
		}
		if name == "" && svc.Port == 0 {
			return Service{}, fmt.Errorf("published service %q: empty name before '='", s)
		}
		svc.Name = name
	}
	svc.Target = target
	if err := svc.validate(); err != nil {
		return Service{}, fmt.Errorf("published service %q: %w", s, err)
	}
	host, port, _ := net.SplitHostPort(svc.Target)
	p, _ := parsePort(port)
	svc.Target = net.JoinHostPort(host, strconv.Itoa(int(p)))
	return svc, nil
}

// String returns the service in the form ParseService reads.
func (s Service) String() string {
	switch {
	case s.Name == "" && s.Port == 0:
		return s.Target
	case s.Port == 0:
		return s.Name + "=" + s.Target
	}
	return s.Name + ":" + strconv.Itoa(int(s.Port)) + "=" + s.Target
}

func (s Service) validate() error {
	if s.Name != "" && !isLabel(s.Name) {
		return fmt.Errorf("name %q is not a DNS label (lowercase letters, digits and inner hyphens, at most 63)", s.Name)
	}
	host, port, err := net.SplitHostPort(s.Target)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if _, err := parsePort(port); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if _, err := netip.ParseAddr(host); err != nil && !isHostname(host) {
		return fmt.Errorf("target host %q is neither an IP address nor a host name", host)
	}
	return nil
}

// targetPort returns the port of a validated target.
func (s Service) targetPort() uint16 {
	_, port, _ := net.SplitHostPort(s.Target)
	p, _ := parsePort(port)
	return p
}

func parsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("bad port %q", s)
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(n), nil
}

// isLabel reports whether s is a lowercase DNS label.
func isLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isHostname reports whether s is a plausible host name: dot-separated
// labels of letters, digits, hyphens and underscores.
func isHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i] | 0x20
			if !(c >= 'a' && c <= 'z' || l[i] >= '0' && l[i] <= '9' || l[i] == '-' || l[i] == '_') {
				return false
			}
		}
	}
	return true
}

// errNoVIPs means more services were published than virtual IPs exist.
var errNoVIPs = errors.New("too many published services")
