package renter

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/zennet/zennet/market"
)

// providerHostKeys trusts a provider's host key the first time it is seen
// and pins it in the config dir's known_providers from then on.
func providerHostKeys(configDir string) (gossh.HostKeyCallback, error) {
	path := KnownProvidersPath(configDir)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return nil, err
	}
	f.Close()
	var mu sync.Mutex
	return func(hostname string, remote net.Addr, key gossh.PublicKey) error {
		mu.Lock()
		defer mu.Unlock()
		cb, err := knownhosts.New(path)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		err = cb(hostname, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) && len(ke.Want) == 0 {
			line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key)
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = fmt.Fprintln(f, line)
			return err
		}
		if errors.As(err, &ke) {
			return fmt.Errorf("provider %s presented a different host key than before (%s); if it was re-installed, remove its line from %s", hostname, gossh.FingerprintSHA256(key), path)
		}
		return err
	}, nil
}

// pinned accepts only the host key an announcement names.
func pinned(want string) gossh.HostKeyCallback {
	return func(_ string, _ net.Addr, key gossh.PublicKey) error {
		if market.ProviderString(key) != want {
			return fmt.Errorf("host key %s is not the announced provider's", gossh.FingerprintSHA256(key))
		}
		return nil
	}
}
