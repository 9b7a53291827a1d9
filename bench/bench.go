// Package bench measures what a machine's sandboxes deliver, so that any
// provider can be priced per unit of work rather than per CPU-second.
//
// The canonical suite (Workloads) is built in: workloads written in Go that
// load the hardware in different mixes (integer and floating-point compute,
// memory bandwidth and latency, system calls, file I/O, process creation,
// loopback TCP, compression, hashing). Each runs inside a real gVisor
// sandbox as 'zennet agent bench', at full load for a few seconds with
// parameters drawn from a seed (RunWorkload). The driver (RunSuite, after
// Zennet's algorithm) runs N such steps, each a workload and a seed, and
// samples the sandbox's meter before and after each: a step's counter
// deltas over its seconds are one row of the calibration matrix, its work
// per second (the score) the matching value. The Phoronix Test Suite can
// stand in for the canonical suite where it is installed (RunPTS).
//
// A Set is the result: the machine, the sandbox, the steps, signed by the
// benchmarker's SSH key. docs/calibration.md defines its file format.
// EnsureCalibration runs the suite on a provider's first start and again
// when its hardware changes; SpotCheck replays one step inside a rented
// sandbox and compares what it gets with what the set claims. CheckFile
// and Import verify sets others measured and keep them; MeasureFairness
// measures how fairly the price model bills the same jobs on several
// sandbox configurations of this machine.
//
// Package bench imports the domain packages sandbox and meter, never an
// adapter.
package bench
