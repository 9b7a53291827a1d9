package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/zennet/zennet/internal/atomicfile"
)

// The files a fairness measurement writes to its directory.
const (
	// FairnessReportFile is the report (FairnessReport).
	FairnessReportFile = "fairness-report.json"
	// FairnessRunsFile is every pair of every job with its meter trace,
	// and the host's load (FairnessRun).
	FairnessRunsFile = "runs.json"
	// FairnessSetsDir holds each arm's calibration set, unsigned: every
	// replicate as ARM-N.json and the median one (MedianSet) as
	// ARM.json.
	FairnessSetsDir = "sets"
)

// LookupFairArm returns the arm of DefaultFairArms named name.
func LookupFairArm(name string) (FairArm, bool) {
	i := slices.IndexFunc(DefaultFairArms, func(a FairArm) bool { return a.Name == name })
	if i < 0 {
		return FairArm{}, false
	}
	return DefaultFairArms[i], true
}

// LookupFairComparison returns the comparison of DefaultFairComparisons
// named name.
func LookupFairComparison(name string) (FairComparison, bool) {
	i := slices.IndexFunc(DefaultFairComparisons, func(c FairComparison) bool { return c.Name == name })
	if i < 0 {
		return FairComparison{}, false
	}
	return DefaultFairComparisons[i], true
}

// LookupFairJob returns the job of DefaultFairJobs named name.
func LookupFairJob(name string) (FairJob, bool) {
	i := slices.IndexFunc(DefaultFairJobs, func(j FairJob) bool { return j.Name == name })
	if i < 0 {
		return FairJob{}, false
	}
	return DefaultFairJobs[i], true
}

// MeasureFairness is RunFairness keeping what it measured in dir: the
// calibration sets (FairnessSetsDir) and every pair (FairnessRunsFile),
// written even when the run fails part way, with whatever was measured by
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
	for _, m := range r.Arms {
		for i, set := range m.Replicates {
			if err := set.WriteFile(filepath.Join(dir, FairnessSetsDir, fmt.Sprintf("%s-%d.json", m.Arm.Name, i+1))); err != nil {
				return err
			}
		}
		if m.Set != nil {
			if err := m.Set.WriteFile(filepath.Join(dir, FairnessSetsDir, m.Arm.Name+".json")); err != nil {
				return err
			}
		}
	}
	return writeIndentedJSON(filepath.Join(dir, FairnessRunsFile), r)
}

// WriteReport writes rep to dir as FairnessReportFile.
func WriteReport(dir string, rep *FairnessReport) error {
	return writeIndentedJSON(filepath.Join(dir, FairnessReportFile), rep)
}

// writeIndentedJSON writes v to path as indented JSON, atomically.
func writeIndentedJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadFairnessRun reads back what MeasureFairness wrote to dir, for
// pricing it again (AnalyseFairness) without measuring: the pairs
// (FairnessRunsFile) and every arm's replicates (FairnessSetsDir), whose
// medians it takes again.
func ReadFairnessRun(dir string) (*FairnessRun, error) {
	b, err := os.ReadFile(filepath.Join(dir, FairnessRunsFile))
	if err != nil {
		return nil, err
	}
	run := &FairnessRun{}
	if err := json.Unmarshal(b, run); err != nil {
		return nil, fmt.Errorf("%s: %w", FairnessRunsFile, err)
	}
	for i := range run.Arms {
		m := &run.Arms[i]
		for r := 1; r <= run.Replicates; r++ {
			set, err := ReadFile(filepath.Join(dir, FairnessSetsDir, fmt.Sprintf("%s-%d.json", m.Arm.Name, r)))
			if err != nil {
				return nil, err
			}
			m.Replicates = append(m.Replicates, set)
		}
		if m.Set, err = MedianSet(m.Replicates); err != nil {
			return nil, fmt.Errorf("arm %s: %w", m.Arm.Name, err)
		}
	}
	return run, nil
}
