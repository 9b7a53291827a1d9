package renter

import "path/filepath"

// The renter's files in its config dir, besides sessions/ (the session
// package's) and the keys.

// ProvidersPath is the renter's directory of known providers.
func ProvidersPath(configDir string) string { return filepath.Join(configDir, "providers.json") }

// MarksPath holds the failed spot checks, a JSON line each.
func MarksPath(configDir string) string { return filepath.Join(configDir, "marks.jsonl") }

// LedgerDir holds the sessions' ledgers, a file each.
func LedgerDir(configDir string) string { return filepath.Join(configDir, "ledger") }

// KnownProvidersPath pins providers' host keys, OpenSSH known_hosts style.
func KnownProvidersPath(configDir string) string { return filepath.Join(configDir, "known_providers") }
