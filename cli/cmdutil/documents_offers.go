package cmdutil

import (
	"time"
)

// OfferRow is one provider's offer as the market announces it.
type OfferRow struct {
	Address     string `json:"address"`
	Fingerprint string `json:"fingerprint"`
	// PricePerWorkMsat is the price of the reference machine's CPU-second
	// of work (0: flat rates); Score the provider's speed relative to the
	// reference machine (0: uncalibrated); CPUHourMsat what one of its
	// CPUs costs an hour busy, their product by 3600.
	PricePerWorkMsat float64 `json:"price_per_work_msat"`
	Score            float64 `json:"score"`
	CPUHourMsat      float64 `json:"cpu_hour_msat"`
	// What it has free: hosts, CPUs, memory and disk over all of them.
	FreeHosts       int     `json:"free_hosts"`
	FreeCPUs        float64 `json:"free_cpus"`
	FreeMemoryBytes int64   `json:"free_memory_bytes"`
	FreeDiskBytes   int64   `json:"free_disk_bytes"`
	// Calibration is the digest of its calibration set ("" for none).
	Calibration     string    `json:"calibration,omitempty"`
	Methods         []string  `json:"methods"`
	Reputation      float64   `json:"reputation"`
	SpotCheckFailed bool      `json:"spot_check_failed,omitempty"`
	Expires         time.Time `json:"expires"`
}

// ConfigRow is one flag's effective value and its source: "default",
// "file", or "env NAME".
type ConfigRow struct {
	Flag   string `json:"flag"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

// SSHConfigDoc is what 'zennet ssh-config' found or did: the OpenSSH
// config it looks at, zennet's Include line, whether the file has it now,
// whether this run changed the file, and (without --install or
// --uninstall) the running hosts' entries.
type SSHConfigDoc struct {
	File      string `json:"file"`
	Include   string `json:"include"`
	Installed bool   `json:"installed"`
	Changed   bool   `json:"changed"`
	Config    string `json:"config,omitempty"`
}
