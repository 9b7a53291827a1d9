package provider

import "time"

// Event is something a Provider tells its caller (Config.Events): one of
// ImageBuilding, Recovered, CalibrationWaiting, Calibrating, Calibrated,
// FlatRates, Started.
type Event interface{ event() }

// ImageBuilding: the sandboxes' root filesystem is missing (or zennet's, from an older recipe) and is being
// built at Path (once; about a minute).
type ImageBuilding struct{ Path string }

// Recovered: an earlier run left Sandboxes sandboxes, now removed.
type Recovered struct{ Sandboxes int }

// CalibrationWaiting: another provider is calibrating this machine; this
// one waits for it and uses its result.
type CalibrationWaiting struct{}

// Calibrating: this machine is being calibrated, Steps steps of the
// canonical benchmark suite in a sandbox (once per machine).
type Calibrating struct{ Steps int }

// Calibrated: the calibration took Took.
type Calibrated struct{ Took time.Duration }

// FlatRates: the calibration cannot be priced per unit of work (the
// tariff misses its steps by more than pricing's bounds: Reason says by
// how much), so the provider offers its flat rates.
type FlatRates struct{ Reason string }

// Started: the provider takes renters; its info file is written.
type Started struct{ Info Info }

func (ImageBuilding) event()      {}
func (Recovered) event()          {}
func (CalibrationWaiting) event() {}
func (Calibrating) event()        {}
func (Calibrated) event()         {}
func (FlatRates) event()          {}
func (Started) event()            {}
