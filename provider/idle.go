package provider

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/zennet/zennet/idle"
	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sandbox"
	"github.com/zennet/zennet/sshgate"
)

// idleKeeper lends the machine only while its owner leaves it alone
// (Config.Idle): it pauses every lease while the owner is busy, throttles
// them while the owner's load is light, and takes no new leases meanwhile.
type idleKeeper struct {
	w   *idle.Watcher
	mgr *lease.Manager
	rt  *sandbox.Runtime
	gw  *sshgate.Gateway
	log *slog.Logger

	mu        sync.Mutex
	state     idle.State         // the latest the watcher reported
	paused    map[string]bool    // paused for the owner, by us
	throttled map[string]float64 // the quota set, by lease
}

func startIdleKeeper(ctx context.Context, policy idle.Policy, dataDir string, mgr *lease.Manager, rt *sandbox.Runtime, gw *sshgate.Gateway, log *slog.Logger) (*idleKeeper, error) {
	w, err := idle.New(idle.Config{
		Policy: policy,
		// The provider and all it starts, and every sandbox of its
		// cgroup parent, are not the owner's load.
		ExcludeRoots:   []int{os.Getpid()},
		ExcludeCgroups: []string{sandbox.CgroupParentFor(filepath.Join(dataDir, "sandboxes"))},
		Log:            log,
	})
	if err != nil {
		return nil, fmt.Errorf("--when-idle: %w", err)
	}
	k := &idleKeeper{w: w, mgr: mgr, rt: rt, gw: gw, log: log.With("subsystem", "idle"), paused: map[string]bool{}, throttled: map[string]float64{}}
	go w.Run(ctx, func(st idle.State, r idle.Reading) {
		k.log.Info("owner load", "state", st.String(), "reading", r.String())
		k.mu.Lock()
		k.state = st
		k.mu.Unlock()
		k.apply(ctx, st)
	})
	// New leases get the current state too.
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				k.mu.Lock()
				st := k.state
				k.mu.Unlock()
				k.apply(ctx, st)
			}
		}
	}()
	return k, nil
}

// apply puts every lease in the state the owner's load asks.
func (k *idleKeeper) apply(ctx context.Context, st idle.State) {
	k.mu.Lock()
	defer k.mu.Unlock()
	leases := k.mgr.List()
	if st == idle.Busy {
		k.mgr.SetHold(idle.PauseReason)
		why := lease.Pause{Cause: proto.PauseOwnerBusy, Reason: idle.PauseReason}
		for _, le := range leases {
			if state, _ := k.mgr.State(le.ID); state != lease.Running {
				continue // paused already, by the operator or for want of payment
			}
			if err := k.mgr.Pause(ctx, le.ID, why); err != nil {
				k.log.Warn("pause for the owner", "lease", le.ID, "err", err)
				continue
			}
			k.paused[le.ID] = true
			k.gw.Announce(le.ID, proto.LeaseState{ID: le.ID, State: proto.StatePaused, Cause: why.Cause, Reason: why.Reason})
		}
		return
	}
	k.mgr.SetHold("")
	factor := k.w.Policy().Factor(st)
	for _, le := range leases {
		cores := factor * le.Limits.CPUs
		if prev, ok := k.throttled[le.ID]; !ok && factor == 1 || ok && prev == cores {
			continue
		}
		if err := idle.SetCPUQuota("", k.rt.CgroupPath(le.ID), cores); err != nil {
			k.log.Warn("set cpu quota", "lease", le.ID, "err", err)
			continue
		}
		if factor == 1 {
			delete(k.throttled, le.ID)
			k.gw.Announce(le.ID, proto.LeaseState{ID: le.ID, State: proto.StateRunning, Cause: proto.PauseOwnerBusy,
				Reason: "full CPU again: the owner left the machine"})
		} else {
			k.throttled[le.ID] = cores
			k.gw.Announce(le.ID, proto.LeaseState{ID: le.ID, State: proto.StateRunning, Cause: proto.PauseOwnerBusy,
				Reason: fmt.Sprintf("CPU limited to %.0f%% of the quota while the provider's owner uses the machine", factor*100)})
		}
	}
	for id := range k.paused {
		state, why := k.mgr.State(id)
		delete(k.paused, id)
		if state != lease.Paused || why.Cause != proto.PauseOwnerBusy {
			continue // resumed, or taken over by another writer
		}
		if err := k.mgr.Resume(ctx, id); err != nil {
			k.log.Warn("resume after the owner", "lease", id, "err", err)
			continue
		}
		k.gw.Announce(id, proto.LeaseState{ID: id, State: proto.StateRunning, Cause: proto.PauseOwnerBusy, Reason: "the provider's owner left the machine"})
	}
}
