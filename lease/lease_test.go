package lease

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/testenv"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/netsandbox"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sandbox"
)

// failNth wraps the real runtime and fails its nth Create: a fault
// injected into a real sandbox runtime, to test the all-or-nothing grant.
type failNth struct {
	*sandbox.Runtime
	n     int32
	calls atomic.Int32
}

func (f *failNth) Create(ctx context.Context, s sandbox.Spec) error {
	if f.calls.Add(1) == f.n {
		return errors.New("injected failure")
	}
	return f.Runtime.Create(ctx, s)
}

func setup(t *testing.T, failAt int32) (*Manager, *sandbox.Runtime, string) {
	return setupNet(t, failAt, nil)
}

// setupNet is setup with nets giving each sandbox a network (nil: none).
func setupNet(t *testing.T, failAt int32, nets *netsandbox.Manager) (*Manager, *sandbox.Runtime, string) {
	t.Helper()
	runsc, image := testenv.Runtime(t)
	dir := t.TempDir()
	rt, err := sandbox.New(sandbox.Config{Runsc: runsc, Image: image, StateDir: filepath.Join(dir, "sb"), Networks: nets})
	if err != nil {
		t.Fatal(err)
	}
	var r Runtime = rt
	if failAt > 0 {
		r = &failNth{Runtime: rt, n: failAt}
	}
	m, err := New(Config{Runtime: r, AgentBinary: testenv.AgentBinary(t), Dir: filepath.Join(dir, "leases"), Signer: signer,
		Capacity: Capacity{Leases: 3, Memory: 1 << 30, CPUs: 3, Disk: 12 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := rt.Close(); err != nil {
			t.Errorf("close runtime: %v", err)
		}
	})
	return m, rt, dir
}

func owner(t *testing.T) ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ssh.NewPublicKey(pub)
	return k
}

var small = proto.Limits{MemoryBytes: 128 << 20, CPUs: 1}

// signer is the provider's host key in these tests.
var signer = func() ssh.Signer {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, _ := ssh.NewSignerFromKey(priv)
	return s
}()

func TestGrantAllOrNothing(t *testing.T) {
	m, rt, dir := setup(t, 2)
	_, err := m.Grant(context.Background(), owner(t), "h", 3, small, nil)
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("Grant err = %v, want the injected failure", err)
	}
	if sts, _ := rt.List(context.Background()); len(sts) != 0 {
		t.Fatalf("sandboxes left after a failed grant: %+v", sts)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "leases")); len(ents) != 0 {
		t.Fatalf("lease dirs left: %d", len(ents))
	}
	if f := m.Free(); f != (Capacity{Leases: 3, Memory: 1 << 30, CPUs: 3, Disk: 12 << 30}) {
		t.Fatalf("capacity not returned: %+v", f)
	}
}

// A granted host is ssh-ready at once: its agent answers the first
// connection, with no wait or retry by the caller, as the session's other
// hosts reach it (ssh zennet-2 from zennet-1).
func TestGrantedHostAnswersAtOnce(t *testing.T) {
	nets, err := netsandbox.New(netsandbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m, rt, _ := setupNet(t, 0, nets)
	ctx := context.Background()
	got, err := m.Grant(ctx, owner(t), "h", 2, small, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, le := range got {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := rt.DialGuest(dctx, le.ID, netsandbox.AgentPort)
		cancel()
		if err != nil {
			t.Fatalf("lease %s: the first connection to its agent: %v", le.ID, err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		banner := make([]byte, 8)
		_, err = io.ReadFull(c, banner)
		c.Close()
		if err != nil || string(banner) != "SSH-2.0-" {
			t.Fatalf("lease %s: agent answered %q, %v; want an SSH banner", le.ID, banner, err)
		}
	}
}

func TestCapacityAndOwnership(t *testing.T) {
	m, rt, _ := setup(t, 0)
	ctx := context.Background()
	alice, bob := owner(t), owner(t)
	if _, err := m.Grant(ctx, alice, "a", 4, small, nil); !errors.Is(err, proto.ErrCapacity) {
		t.Fatalf("4 leases of 3: err = %v", err)
	}
	if _, err := m.Grant(ctx, alice, "a", 1, proto.Limits{MemoryBytes: 2 << 30, CPUs: 1}, nil); !errors.Is(err, proto.ErrCapacity) {
		t.Fatalf("2G of 1G: err = %v", err)
	}
	got, err := m.Grant(ctx, alice, "a", 2, small, nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := m.Offer(alice, proto.Demand{Count: 5, Limits: small})
	if err != nil || o.Count != 1 {
		t.Fatalf("Offer after 2 of 3 = %+v, %v; want 1 host", o, err)
	}
	id := got[0].ID
	unpaid := Pause{Cause: proto.PauseUnpaid, Reason: "unpaid: 5 msat due"}
	if err := m.Pause(ctx, id, unpaid); err != nil {
		t.Fatal(err)
	}
	if st, why := m.State(id); st != Paused || why != unpaid {
		t.Fatalf("State after Pause = %v, %+v", st, why)
	}
	// A second writer's pause of a paused lease takes it over.
	operator := Pause{Cause: proto.PauseOperator, Reason: "paused by the operator"}
	if err := m.Pause(ctx, id, operator); err != nil {
		t.Fatal(err)
	}
	if st, why := m.State(id); st != Paused || why != operator {
		t.Fatalf("State after a second Pause = %v, %+v", st, why)
	}
	if _, _, err := m.Connect(id, alice); !errors.Is(err, ErrPaused) || !strings.Contains(err.Error(), operator.Reason) {
		t.Fatalf("Connect to a paused lease: err = %v", err)
	}
	if err := m.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	if st, why := m.State(id); st != Running || why != (Pause{}) {
		t.Fatalf("State after Resume = %v, %+v", st, why)
	}
	if _, release, err := m.Connect(id, alice); err != nil {
		t.Fatalf("Connect after Resume: %v", err)
	} else {
		release()
	}
	if _, _, err := m.Connect(id, bob); !errors.Is(err, proto.ErrNotFound) {
		t.Fatalf("bob connects to alice's lease: err = %v", err)
	}
	if _, err := m.End(ctx, id, bob, proto.EndReleased); !errors.Is(err, proto.ErrNotFound) {
		t.Fatalf("bob ends alice's lease: err = %v", err)
	}
	final, err := m.End(ctx, id, alice, proto.EndReleased)
	if err != nil {
		t.Fatal(err)
	}
	if final == nil || final.Lease != id || final.Verify(signer.PublicKey()) != nil {
		t.Fatalf("final report of an ended lease: %+v", final)
	}
	if err := m.EndHolder(ctx, "a", proto.EndRenterGone); err != nil {
		t.Fatal(err)
	}
	if sts, _ := rt.List(ctx); len(sts) != 0 {
		t.Fatalf("sandboxes left: %+v", sts)
	}
	if f := m.Free(); f.Leases != 3 {
		t.Fatalf("capacity after ending all: %+v", f)
	}
}

func TestRecoverRemovesLeftovers(t *testing.T) {
	m, rt, dir := setup(t, 0)
	ctx := context.Background()
	// What a crashed provider leaves: a running sandbox and its lease dir.
	id := NewID()
	os.MkdirAll(filepath.Join(dir, "leases", id), 0o700)
	if err := rt.Create(ctx, sandbox.Spec{ID: id, MemoryBytes: 128 << 20, Args: []string{"/bin/sleep", "1000"}}); err != nil {
		t.Fatal(err)
	}
	n, err := m.Recover(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v; want 1", n, err)
	}
	if sts, _ := rt.List(ctx); len(sts) != 0 {
		t.Fatalf("sandboxes left: %+v", sts)
	}
	if _, err := os.Stat(filepath.Join(dir, "leases", id)); !os.IsNotExist(err) {
		t.Fatalf("lease dir left: %v", err)
	}
}

// An offer made before a hold (the owner came back, draining) is not
// granted after it.
func TestHoldAndDrainRefuseGrants(t *testing.T) {
	m, rt, _ := setup(t, 0)
	for _, set := range []struct {
		name       string
		on, off    func()
		wantReason string
	}{
		{"hold", func() { m.SetHold("the owner is using the machine") }, func() { m.SetHold("") }, "the owner is using the machine"},
		{"drain", func() { m.SetDraining(true) }, func() { m.SetDraining(false) }, "draining"},
	} {
		if _, err := m.Offer(owner(t), proto.Demand{Count: 1, Limits: small}); err != nil {
			t.Fatalf("%s: offer before: %v", set.name, err)
		}
		set.on()
		if _, err := m.Offer(owner(t), proto.Demand{Count: 1, Limits: small}); !errors.Is(err, proto.ErrCapacity) || !strings.Contains(err.Error(), set.wantReason) {
			t.Fatalf("%s: offer = %v, want a capacity error saying %q", set.name, err, set.wantReason)
		}
		if _, err := m.Grant(context.Background(), owner(t), "h", 1, small, nil); !errors.Is(err, proto.ErrCapacity) || !strings.Contains(err.Error(), set.wantReason) {
			t.Fatalf("%s: grant = %v, want a capacity error saying %q", set.name, err, set.wantReason)
		}
		if sts, _ := rt.List(context.Background()); len(sts) != 0 {
			t.Fatalf("%s: sandboxes started: %+v", set.name, sts)
		}
		set.off()
	}
	les, err := m.Grant(context.Background(), owner(t), "h", 1, small, nil)
	if err != nil || len(les) != 1 {
		t.Fatalf("grant after: %v", err)
	}
}

// TestEndsTellWhy: a lease the provider ends on its own tells its holder
// why, as a cause the renter decides on: its operator's end, a memory
// overrun, a sandbox that stopped otherwise.
func TestEndsTellWhy(t *testing.T) {
	m, rt, _ := setup(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got, err := m.Grant(ctx, owner(t), "a", 3, small, nil)
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan proto.Ended, 3)
	m.Notify("a", func(e proto.Ended, _ *meter.Report) { ended <- e })
	next := func() proto.Ended {
		t.Helper()
		select {
		case e := <-ended:
			return e
		case <-ctx.Done():
			t.Fatal("no end told")
		}
		return proto.Ended{}
	}

	if err := m.Terminate(ctx, got[0].ID, proto.EndOperator, "ended by the operator"); err != nil {
		t.Fatal(err)
	}
	if e := next(); e != (proto.Ended{ID: got[0].ID, Cause: proto.EndOperator, Reason: "ended by the operator"}) {
		t.Fatalf("operator's end told as %+v", e)
	}

	// 700 MiB in a host of 128: the sandbox is killed.
	rt.Command(ctx, got[1].ID, "python3", "-c", "b = bytearray(700 * 1024 * 1024)").Run()
	if e := next(); e.ID != got[1].ID || e.Cause != proto.EndMemoryExceeded || e.Reason == "" {
		t.Fatalf("memory overrun told as %+v", e)
	}

	pid, err := rt.Pid(got[2].ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if e := next(); e.ID != got[2].ID || e.Cause != proto.EndSandboxExited || e.Reason == "" {
		t.Fatalf("a killed sandbox told as %+v", e)
	}
	if left := m.List(); len(left) != 0 {
		t.Fatalf("%d leases left", len(left))
	}
}

// One renter key takes no more than the per-renter cap, whatever is free;
// another key still gets the rest, and what a key returns it may take
// again.
func TestPerRenterCap(t *testing.T) {
	m, _, _ := setup(t, 0)
	m.cfg.PerRenter = Capacity{Leases: 1}
	ctx := context.Background()
	alice, bob := owner(t), owner(t)
	o, err := m.Offer(alice, proto.Demand{Count: 3, Limits: small})
	if err != nil || o.Count != 1 {
		t.Fatalf("offer of 3 under a cap of 1: %+v, %v; want 1 host", o, err)
	}
	if _, err := m.Grant(ctx, alice, "a", 2, small, nil); !errors.Is(err, proto.ErrCapacity) || !strings.Contains(err.Error(), "at most 1 leases to one renter key") {
		t.Fatalf("grant of 2 under a cap of 1: err = %v", err)
	}
	got, err := m.Grant(ctx, alice, "a", 1, small, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Offer(alice, proto.Demand{Count: 1, Limits: small}); !errors.Is(err, proto.ErrCapacity) || !strings.Contains(err.Error(), ssh.FingerprintSHA256(alice)+" holds 1 leases") {
		t.Fatalf("offer to a key at its cap: err = %v", err)
	}
	if _, err := m.Grant(ctx, bob, "b", 1, small, nil); err != nil {
		t.Fatalf("another key: %v", err)
	}
	m.cfg.PerRenter = Capacity{Memory: 200 << 20} // memory alone: one small host each
	if _, err := m.Grant(ctx, bob, "b", 1, small, nil); !errors.Is(err, proto.ErrCapacity) || !strings.Contains(err.Error(), "at most 200 MiB") {
		t.Fatalf("grant past the memory cap: err = %v", err)
	}
	m.cfg.PerRenter = Capacity{Leases: 1}
	if _, err := m.End(ctx, got[0].ID, alice, proto.EndReleased); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Grant(ctx, alice, "a", 1, small, nil); err != nil {
		t.Fatalf("a key that released its host takes one again: %v", err)
	}
	if len(m.byOwner) != 2 {
		t.Fatalf("holdings of %d keys, want 2", len(m.byOwner))
	}
}

// Connections into one host, and into one key's hosts, are capped; a
// connection closed frees its place, once however often it is released.
func TestConnectionCaps(t *testing.T) {
	m, _, _ := setup(t, 0)
	m.cfg.MaxConnsPerLease, m.cfg.MaxConnsPerRenter = 2, 3
	ctx := context.Background()
	alice, bob := owner(t), owner(t)
	a, err := m.Grant(ctx, alice, "a", 2, small, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Grant(ctx, bob, "b", 1, small, nil)
	if err != nil {
		t.Fatal(err)
	}
	var releases []func()
	connect := func(le *Lease, who ssh.PublicKey) error {
		_, release, err := m.Connect(le.ID, who)
		if err == nil {
			releases = append(releases, release)
		}
		return err
	}
	for range 2 {
		if err := connect(a[0], alice); err != nil {
			t.Fatal(err)
		}
	}
	if err := connect(a[0], alice); !errors.Is(err, ErrTooManyConns) || !strings.Contains(err.Error(), "2 connections open, the most one host takes") {
		t.Fatalf("a third connection into one host: err = %v", err)
	}
	if err := connect(a[1], alice); err != nil {
		t.Fatalf("alice's other host: %v", err)
	}
	if err := connect(a[1], alice); !errors.Is(err, ErrTooManyConns) || !strings.Contains(err.Error(), "the most one renter takes") {
		t.Fatalf("a fourth connection of one key: err = %v", err)
	}
	if err := connect(b[0], bob); err != nil {
		t.Fatalf("another key's host while alice is at her cap: %v", err)
	}
	releases[0]()
	releases[0]() // twice: frees one place only
	if err := connect(a[1], alice); err != nil {
		t.Fatalf("after a connection closed: %v", err)
	}
	if err := connect(a[1], alice); !errors.Is(err, ErrTooManyConns) {
		t.Fatalf("a double release freed two places: err = %v", err)
	}

	// Connections through runsc exec have a cap of their own.
	m.cfg.MaxConnsPerLease, m.cfg.MaxConnsPerRenter = 100, 100
	for range MaxExecConnsPerLease - 1 { // b[0] holds one already
		if err := connect(b[0], bob); err != nil {
			t.Fatal(err)
		}
	}
	if err := connect(b[0], bob); !errors.Is(err, ErrTooManyConns) || !strings.Contains(err.Error(), "through runsc exec") {
		t.Fatalf("a connection through runsc exec past its cap: err = %v", err)
	}
}
