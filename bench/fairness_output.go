package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/zennet/zennet/internal/atomicfile"
	"github.com/zennet/zennet/pricing"
)

// The files a fairness measurement writes to its directory.
const (
	// FairnessInputFile is pricing's input (pricing.FairnessInput), for
	// re-running the analysis with 'zennet price fairness'.
	FairnessInputFile = "fairness-input.json"
	// FairnessReportFile is the report (pricing.FairnessReport).
	FairnessReportFile = "fairness-report.json"
	// FairnessRunsFile is every repeat of every job and the host's load
	// (FairnessRun).
	FairnessRunsFile = "runs.json"
	// FairnessSetsDir holds each provider's calibration set, unsigned,
	// as NAME.json.
	FairnessSetsDir = "sets"
)

// LookupFairProvider returns the configuration of DefaultFairProviders
// named name.
func LookupFairProvider(name string) (FairProvider, bool) {
	i := slices.IndexFunc(DefaultFairProviders, func(p FairProvider) bool { return p.Name == name })
	if i < 0 {
		return FairProvider{}, false
	}
	return DefaultFairProviders[i], true
}

// LookupFairJob returns the job of DefaultFairJobs named name.
func LookupFairJob(name string) (FairJob, bool) {
	i := slices.IndexFunc(DefaultFairJobs, func(j FairJob) bool { return j.Name == name })
	if i < 0 {
		return FairJob{}, false
	}
	return DefaultFairJobs[i], true
}

// ReadSets reads dir/NAME.json for every provider, for
// FairnessConfig.Sets.
func ReadSets(dir string, providers []FairProvider) (map[string]*Set, error) {
	sets := map[string]*Set{}
	for _, p := range providers {
		set, err := ReadFile(filepath.Join(dir, p.Name+".json"))
		if err != nil {
			return nil, err
		}
		sets[p.Name] = set
	}
	return sets, nil
}

// MeasureFairness is RunFairness keeping what it measured in dir: the
// calibration sets (FairnessSetsDir) and every repeat (FairnessRunsFile),
// written even when a later provider fails, with whatever was measured by
// then.
func MeasureFairness(ctx context.Context, cfg FairnessConfig, dir string) (*FairnessRun, error) {
	if err := os.MkdirAll(filepath.Join(dir, FairnessSetsDir), 0o755); err != nil {
		return nil, err
	}
	run, err := RunFairness(ctx, cfg)
	if run != nil {
		if werr := run.writeFiles(dir); werr != nil && err == nil {
			err = werr
		}
	}
	return run, err
}

// writeFiles writes the raw measurements and the calibration sets to dir.
func (r *FairnessRun) writeFiles(dir string) error {
	for _, m := range r.Providers {
		if m.Set != nil {
			if err := m.Set.WriteFile(filepath.Join(dir, FairnessSetsDir, m.Provider.Name+".json")); err != nil {
				return err
			}
		}
	}
	return writeIndentedJSON(filepath.Join(dir, FairnessRunsFile), r)
}

// Report analyses the run with pricing.Fairness under opts and writes its
// input (FairnessInputFile) and the report (FairnessReportFile) to dir.
// opts.Reference, if set, replaces the first provider's calibration as the
// reference. It returns the report and the input file's path.
func (r *FairnessRun) Report(dir string, opts pricing.Options) (*pricing.FairnessReport, string, error) {
	if opts.Reference != nil {
		r.Input.Reference = opts.Reference
	}
	input := filepath.Join(dir, FairnessInputFile)
	if err := writeIndentedJSON(input, r.Input); err != nil {
		return nil, "", err
	}
	rep, err := pricing.Fairness(r.Input, opts)
	if err != nil {
		return nil, "", err
	}
	if err := writeIndentedJSON(filepath.Join(dir, FairnessReportFile), rep); err != nil {
		return nil, "", err
	}
	return rep, input, nil
}

// writeIndentedJSON writes v to path as indented JSON, atomically.
func writeIndentedJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
}
