package cmdutil

// The default paths, in one place: each follows its ZENNET_* variable,
// then the XDG base directory, then the XDG default under HOME. Flags
// override them.

import (
	"os"
	"path/filepath"
)

// DefaultConfigDir holds the renter's state: keys, sessions, ledgers,
// known providers (ZENNET_CONFIG_DIR, else $XDG_CONFIG_HOME/zennet, else
// ~/.config/zennet).
func DefaultConfigDir() string {
	if d := os.Getenv("ZENNET_CONFIG_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "zennet")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".config", "zennet")
}

// DefaultCacheDir holds what can be rebuilt: runsc, the image, the
// calibration (ZENNET_CACHE_DIR, else $XDG_CACHE_HOME/zennet, else
// ~/.cache/zennet).
func DefaultCacheDir() string {
	if d := os.Getenv("ZENNET_CACHE_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "zennet")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "zennet")
}

// DefaultDataDir holds providers' state (ZENNET_DATA_DIR, else
// $XDG_DATA_HOME/zennet, else ~/.local/share/zennet).
func DefaultDataDir() string {
	if d := os.Getenv("ZENNET_DATA_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "zennet")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "share", "zennet")
}

// DefaultProviderDataDir is the provider's data dir: host key, leases,
// sandboxes, ledger.
func DefaultProviderDataDir() string { return filepath.Join(DefaultDataDir(), "provider") }

// DefaultImage is the sandboxes' root filesystem (ZENNET_IMAGE, else in
// the cache dir).
func DefaultImage() string {
	return EnvOr("ZENNET_IMAGE", filepath.Join(DefaultCacheDir(), "images", "bookworm"))
}
