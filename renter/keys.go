package renter

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/zennet/zennet/market"
)

// providerHostKeys trusts a provider's host key the first time it is seen
// (telling firstUse its fingerprint) and pins it in the config dir's
// known_providers from then on. With want (fingerprints SHA256:… or keys
// in authorized_keys form, as --provider-key gives them), a provider's key
// must be one of them, first use or not.
func providerHostKeys(configDir string, want []string, firstUse func(host, fingerprint string)) (gossh.HostKeyCallback, error) {
	var wantFP []string
	for _, w := range want {
		fp, err := keyFingerprint(w)
		if err != nil {
			return nil, err
		}
		wantFP = append(wantFP, fp)
	}
	path := KnownProvidersPath(configDir)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return nil, err
	}
	f.Close()
	var mu sync.Mutex
	return func(hostname string, remote net.Addr, key gossh.PublicKey) error {
		fp := gossh.FingerprintSHA256(key)
		if len(wantFP) > 0 && !slices.Contains(wantFP, fp) {
			return fmt.Errorf("provider %s presented host key %s, not the one given with --provider-key (%s)", hostname, fp, strings.Join(wantFP, ", "))
		}
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
			if _, err = fmt.Fprintln(f, line); err == nil && len(wantFP) == 0 && firstUse != nil {
				firstUse(hostname, fp)
			}
			return err
		}
		if errors.As(err, &ke) {
			return fmt.Errorf("provider %s presented a different host key than before (%s); if it was re-installed, remove its line from %s", hostname, gossh.FingerprintSHA256(key), path)
		}
		return err
	}, nil
}

// keyFingerprint reads a --provider-key: a fingerprint (SHA256:…) or a
// public key in authorized_keys form.
func keyFingerprint(s string) (string, error) { return flagFingerprint("--provider-key", s) }

// flagFingerprint reads a key given to flag: a fingerprint (SHA256:…) or
// a public key in authorized_keys form.
func flagFingerprint(flag, s string) (string, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "SHA256:"); ok {
		if b, err := base64.RawStdEncoding.DecodeString(rest); err == nil && len(b) == sha256.Size {
			return s, nil
		}
		return "", fmt.Errorf("%s %q: not a SHA256 fingerprint (SHA256: and 43 characters of base64, as 'ssh-keygen -lf' prints)", flag, s)
	}
	key, _, _, _, err := gossh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return "", fmt.Errorf("%s %q: neither a fingerprint (SHA256:…) nor a public key (ssh-ed25519 AAAA…)", flag, s)
	}
	return gossh.FingerprintSHA256(key), nil
}

// TrustSelf, given to --trust-calibration alone, takes only calibration
// sets signed by the provider's own key.
const TrustSelf = "self"

// calibrationSigners reads --trust-calibration's values: TrustSelf, key
// fingerprints or public keys. It returns the fingerprints.
func calibrationSigners(keys []string) ([]string, error) {
	var fps []string
	for _, k := range keys {
		if strings.TrimSpace(k) == TrustSelf {
			continue
		}
		fp, err := flagFingerprint("--trust-calibration", k)
		if err != nil {
			return nil, err
		}
		fps = append(fps, fp)
	}
	return fps, nil
}

// CheckTrustCalibration says what is wrong with --trust-calibration's
// values, if anything.
func CheckTrustCalibration(keys []string) error {
	_, err := calibrationSigners(keys)
	return err
}

// CheckProviderKey says what is wrong with a --provider-key, if anything.
func CheckProviderKey(s string) error {
	_, err := keyFingerprint(s)
	return err
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
