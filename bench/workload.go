package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Params are a workload's parameters, by name. Values are decimal numbers
// or short words; every workload documents its own.
type Params map[string]string

func (p Params) int(name string, min, max int64) (int64, error) {
	s, ok := p[name]
	if !ok {
		return 0, fmt.Errorf("parameter %s missing", name)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < min || v > max {
		return 0, fmt.Errorf("parameter %s=%q: want an integer in [%d, %d]", name, s, min, max)
	}
	return v, nil
}

func (p Params) word(name string, allowed ...string) (string, error) {
	s, ok := p[name]
	if !ok {
		return "", fmt.Errorf("parameter %s missing", name)
	}
	if !slices.Contains(allowed, s) {
		return "", fmt.Errorf("parameter %s=%q: want one of %v", name, s, allowed)
	}
	return s, nil
}

// Workload is one benchmark of the canonical suite: a kernel that loads the
// hardware in one mix, run by every worker at once until time is up.
type Workload struct {
	// Name is how steps and the agent name it, e.g. "hash".
	Name string
	// Unit is what one operation is, e.g. "bytes" for hash: a Result's Ops
	// and Score (Ops per second) count it.
	Unit string
	// Doc says what the workload does and what its parameters are.
	Doc string
	// random draws the workload's parameters.
	random func(r *rand.Rand) Params
	// prepare checks p and sets up the work (buffers, files, servers)
	// for the given number of workers; the returned work runs in worker
	// i until stop is done and returns the operations it did. cleanup, if
	// not nil, runs once every worker has returned. With 0 workers it
	// only checks p and returns no work.
	prepare func(p Params, workers int) (work func(i int, stop *stopper) float64, cleanup func(), err error)
}

// Workloads returns the canonical suite, in a fixed order.
func Workloads() []*Workload { return slices.Clone(suite) }

// LookupWorkload returns the suite's workload called name.
func LookupWorkload(name string) (*Workload, bool) {
	for _, w := range suite {
		if w.Name == name {
			return w, true
		}
	}
	return nil, false
}

// WorkloadNames returns the names of the suite's workloads.
func WorkloadNames() []string {
	names := make([]string, len(suite))
	for i, w := range suite {
		names[i] = w.Name
	}
	return names
}

// RandomParams draws the workload's parameters from seed: the same seed
// always gives the same parameters.
func (w *Workload) RandomParams(seed uint64) Params {
	return w.random(rand.New(rand.NewPCG(seed, 0x7a656e6e6574))) // "zennet"
}

// Result is what one run of a workload did, as the agent prints it.
type Result struct {
	Workload string  `json:"workload"`
	Seed     uint64  `json:"seed"`
	Params   Params  `json:"params"`
	Workers  int     `json:"workers"`
	Seconds  float64 `json:"seconds"`
	Ops      float64 `json:"ops"`
	Unit     string  `json:"unit"`
	// Score is Ops per second of the run.
	Score float64 `json:"score"`
}

// RunOptions say how the agent runs a workload.
type RunOptions struct {
	// Seconds is how long the workload runs at full load.
	Seconds float64
	// Seed draws the parameters that Params does not set.
	Seed uint64
	// Params override drawn parameters.
	Params Params
	// Workers is how many run at once; 0 means one per CPU.
	Workers int
	// Sync makes the run wait, once set up, for a line on its input after
	// printing a ready line, so that whoever meters it measures only the
	// run and not the set-up.
	Sync bool
}

// Ready is the line the agent prints in sync mode once set up.
type Ready struct {
	Ready    bool   `json:"ready"`
	Workload string `json:"workload"`
}

// MaxSeconds bounds one run of a workload.
const MaxSeconds = 3600

// RunWorkload runs the workload called name at full load and writes its
// Result to out as one JSON line. It is what 'zennet agent bench' runs
// inside the sandbox.
func RunWorkload(ctx context.Context, name string, opts RunOptions, in io.Reader, out io.Writer) (Result, error) {
	w, ok := LookupWorkload(name)
	if !ok {
		return Result{}, fmt.Errorf("no workload %q; the suite has %s", name, strings.Join(WorkloadNames(), ", "))
	}
	if !(opts.Seconds > 0 && opts.Seconds <= MaxSeconds) {
		return Result{}, fmt.Errorf("run of %v seconds: want more than 0 and at most %d", opts.Seconds, MaxSeconds)
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	if workers > 256 {
		return Result{}, fmt.Errorf("%d workers: at most 256", workers)
	}
	p := w.RandomParams(opts.Seed)
	for k, v := range opts.Params {
		if _, ok := p[k]; !ok {
			return Result{}, fmt.Errorf("workload %s has no parameter %s", name, k)
		}
		p[k] = v
	}
	work, cleanup, err := w.prepare(p, workers)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", name, err)
	}
	if cleanup != nil {
		defer cleanup()
	}
	if opts.Sync {
		if err := writeLine(out, Ready{Ready: true, Workload: name}); err != nil {
			return Result{}, err
		}
		if _, err := bufio.NewReader(in).ReadString('\n'); err != nil {
			return Result{}, fmt.Errorf("wait for start: %w", err)
		}
	}
	ops := make([]float64, workers)
	var wg sync.WaitGroup
	start := time.Now()
	// Workers look at the clock themselves: a timer goroutine could starve
	// while every P runs a kernel that is rarely at a preemption point.
	stop := &stopper{deadline: start.Add(time.Duration(opts.Seconds * float64(time.Second)))}
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ops[i] = work(i, stop)
		}()
	}
	finished := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			stop.stop.Store(true)
		case <-finished:
		}
	}()
	wg.Wait()
	close(finished)
	elapsed := time.Since(start).Seconds()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	var total float64
	for _, o := range ops {
		total += o
	}
	r := Result{Workload: name, Seed: opts.Seed, Params: p, Workers: workers, Seconds: elapsed, Ops: total, Unit: w.Unit, Score: total / elapsed}
	return r, writeLine(out, r)
}

func writeLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ParseResult reads a Result line.
func ParseResult(line []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(line, &r); err != nil {
		return r, fmt.Errorf("workload result: %w", err)
	}
	if r.Workload == "" || !(r.Seconds > 0) || r.Ops < 0 || math.IsInf(r.Score, 0) || math.IsNaN(r.Score) {
		return r, errors.New("workload result: incomplete")
	}
	return r, nil
}

// stopper tells a workload's workers when to stop: at the deadline, or
// earlier when the run is cancelled.
type stopper struct {
	deadline time.Time
	stop     atomic.Bool
}

// done reports whether the worker should stop. Workers call it between
// chunks of work of at most a few milliseconds.
func (s *stopper) done() bool {
	if s.stop.Load() {
		return true
	}
	if !time.Now().Before(s.deadline) {
		s.stop.Store(true)
		return true
	}
	return false
}

// sink keeps the compiler from removing work whose result nobody reads.
var sink atomic.Uint64

// pick returns one of choices.
func pick[T any](r *rand.Rand, choices ...T) T { return choices[r.IntN(len(choices))] }

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// describeParams renders p in a stable order, for humans.
func describeParams(p Params) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(p)) {
		parts = append(parts, k+"="+p[k])
	}
	return strings.Join(parts, " ")
}

// ParseParams parses parameters written KEY=VALUE (as 'zennet agent bench
// --param' takes them); a later KEY replaces an earlier one.
func ParseParams(kvs []string) (Params, error) {
	p := Params{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want KEY=VALUE", kv)
		}
		p[k] = v
	}
	return p, nil
}
