package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zennet/zennet/proto"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	id1 = "zn-0123456789abcdef0"
	id2 = "zn-fedcba98765432100"
	id3 = "zn-00000000000000000" // valid, never leased
)

// fakeProvider is an in-memory Provider with the state rules of the real
// one: pausing needs a running lease, resuming a paused one.
type fakeProvider struct {
	mu       sync.Mutex
	st       Status
	failWith error
	calls    []string
}

func newFake() *fakeProvider {
	return &fakeProvider{st: Status{
		Time: t0,
		Identity: Identity{Fingerprint: "SHA256:provider", Address: "127.0.0.1:2222", DataDir: "/data",
			Started: t0.Add(-time.Hour), Version: "test"},
		Capacity:  Resources{Leases: 8, MemoryBytes: 8 << 30, CPUs: 8, DiskBytes: 100 << 30},
		Used:      Resources{Leases: 2, MemoryBytes: 768 << 20, CPUs: 1.5, DiskBytes: 8 << 30},
		IntervalS: 5,
		Leases: []LeaseStatus{
			{ID: id1, Renter: "SHA256:renterA", Started: t0.Add(-10 * time.Minute), State: StateRunning,
				Limits: proto.Limits{MemoryBytes: 512 << 20, CPUs: 1, DiskBytes: 4 << 30}, Method: "embedded",
				CPUNs: 12_500_000_000, MemoryBytes: 300 << 20, NetInBytes: 1000, NetOutBytes: 2000,
				BilledMsat: 5000, EarnedMsat: 4000, DueMsat: 1000, LastReport: t0.Add(-2 * time.Second)},
			{ID: id2, Renter: "SHA256:renterB", Started: t0.Add(-time.Minute), State: StatePausedUnpaid,
				StateReason: "payment overdue", Limits: proto.Limits{MemoryBytes: 256 << 20, CPUs: 0.5, DiskBytes: 4 << 30},
				Method: "lightning"},
		},
		Earnings:        Earnings{SessionMsat: 4000, TodayMsat: 9000},
		Payments:        []PaymentEvent{{Time: t0.Add(-5 * time.Second), Lease: id1, Msat: 4000, Method: "embedded"}},
		PaymentFailures: 3,
		Log:             []LogLine{{Time: t0, Level: "INFO", Msg: "lease granted"}},
	}}
}

func (f *fakeProvider) Status(ctx context.Context) (Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failWith != nil {
		return Status{}, f.failWith
	}
	st := f.st
	st.Leases = append([]LeaseStatus(nil), f.st.Leases...)
	return st, nil
}

func (f *fakeProvider) lease(id string) (*LeaseStatus, error) {
	for i := range f.st.Leases {
		if f.st.Leases[i].ID == id {
			return &f.st.Leases[i], nil
		}
	}
	return nil, fmt.Errorf("lease %s: %w", id, ErrNotFound)
}

func (f *fakeProvider) transition(id, call string, from, to LeaseState) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call+" "+id)
	l, err := f.lease(id)
	if err != nil {
		return err
	}
	if from != "" && l.State != from {
		return fmt.Errorf("lease %s is %s: %w", id, l.State, ErrConflict)
	}
	l.State = to
	return nil
}

func (f *fakeProvider) Pause(ctx context.Context, id string) error {
	return f.transition(id, "pause", StateRunning, StatePaused)
}
func (f *fakeProvider) Resume(ctx context.Context, id string) error {
	return f.transition(id, "resume", StatePaused, StateRunning)
}
func (f *fakeProvider) End(ctx context.Context, id string) error {
	return f.transition(id, "end", "", StateEnded)
}
func (f *fakeProvider) Drain(ctx context.Context, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("drain %v", on))
	f.st.Draining = on
	return nil
}

// serve starts a control server for p on a fresh data dir and dials it.
func serve(t *testing.T, p Provider) (string, *Server, *Client) {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := Serve(ctx, SocketPath(dir), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c, err := Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return dir, srv, c
}

func TestStatusRoundTrip(t *testing.T) {
	f := newFake()
	_, _, c := serve(t, f)
	got, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := f.Status(context.Background())
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if string(gb) != string(wb) {
		t.Fatalf("status over the socket differs:\n got %s\nwant %s", gb, wb)
	}
	l, err := c.Lease(context.Background(), id2)
	if err != nil {
		t.Fatal(err)
	}
	if l.State != StatePausedUnpaid || l.StateReason != "payment overdue" || l.Method != "lightning" {
		t.Fatalf("lease %s: %+v", id2, l)
	}
}

func TestStatusJSONNames(t *testing.T) {
	dir, _, _ := serve(t, newFake())
	body, code := rawRequest(t, dir, http.MethodGet, "/v1/status", "")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	for _, k := range []string{`"identity":{"fingerprint":"SHA256:provider"`, `"capacity":{"leases":8,"memory_bytes":`,
		`"used":{`, `"draining":false`, `"interval_s":5`, `"renter":"SHA256:renterA"`, `"state":"paused-unpaid"`,
		`"state_reason":"payment overdue"`, `"cpu_ns":12500000000`, `"net_in_bytes":1000`, `"net_out_bytes":2000`,
		`"billed_msat":5000`, `"earned_msat":4000`, `"due_msat":1000`, `"last_report":"2025-03-01T11:59:58Z"`,
		`"earnings":{"session_msat":4000,"today_msat":9000}`, `"payments":[{"time":`, `"payment_failures":3`,
		`"log":[{"time":"2025-03-01T12:00:00Z","level":"INFO","msg":"lease granted"}]`,
		`"limits":{"memory_bytes":536870912,"cpus":1,"disk_bytes":4294967296}`} {
		if !strings.Contains(body, k) {
			t.Errorf("status JSON lacks %s:\n%s", k, body)
		}
	}
	// The second lease has no report yet: no zero time.
	if strings.Count(body, `"last_report"`) != 1 {
		t.Errorf("want last_report only for the lease with a report:\n%s", body)
	}
}

func TestEmptyListsAreArrays(t *testing.T) {
	f := &fakeProvider{}
	dir, _, _ := serve(t, f)
	body, code := rawRequest(t, dir, http.MethodGet, "/v1/status", "")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	for _, k := range []string{`"leases":[]`, `"payments":[]`, `"log":[]`, `"time":"`} {
		if !strings.Contains(body, k) {
			t.Errorf("status JSON lacks %s:\n%s", k, body)
		}
	}
	if strings.Contains(body, `"time":"0001-01-01`) {
		t.Errorf("the server must fill in the snapshot's time:\n%s", body)
	}
}

func TestActions(t *testing.T) {
	f := newFake()
	_, _, c := serve(t, f)
	ctx := context.Background()
	if err := c.Pause(ctx, id1); err != nil {
		t.Fatal(err)
	}
	if l, _ := c.Lease(ctx, id1); l.State != StatePaused {
		t.Fatalf("after pause: %s", l.State)
	}
	if err := c.Pause(ctx, id1); !errors.Is(err, ErrConflict) {
		t.Fatalf("pausing a paused lease: %v, want a conflict", err)
	} else if !strings.Contains(err.Error(), "is paused") {
		t.Fatalf("the provider's message should come through: %v", err)
	}
	if err := c.Resume(ctx, id1); err != nil {
		t.Fatal(err)
	}
	if err := c.End(ctx, id1); err != nil {
		t.Fatal(err)
	}
	if l, _ := c.Lease(ctx, id1); l.State != StateEnded {
		t.Fatalf("after end: %s", l.State)
	}
	if err := c.Drain(ctx, true); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Status(ctx); !st.Draining {
		t.Fatal("not draining after Drain(true)")
	}
	if err := c.Drain(ctx, false); err != nil {
		t.Fatal(err)
	}
	want := []string{"pause " + id1, "pause " + id1, "resume " + id1, "end " + id1, "drain true", "drain false"}
	if fmt.Sprint(f.calls) != fmt.Sprint(want) {
		t.Fatalf("calls %q, want %q", f.calls, want)
	}
}

func TestUnknownAndBadLease(t *testing.T) {
	f := newFake()
	dir, _, c := serve(t, f)
	ctx := context.Background()
	for _, act := range []func(context.Context, string) error{c.Pause, c.Resume, c.End} {
		if err := act(ctx, id3); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown lease: %v, want not found", err)
		}
	}
	if _, err := c.Lease(ctx, id3); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown lease: %v, want not found", err)
	}
	if err := c.End(ctx, "zn-nothex"); !errors.Is(err, ErrBadRequest) {
		t.Errorf("malformed id: %v, want bad request", err)
	}
	if len(f.calls) != 3 {
		t.Errorf("a malformed id must not reach the provider: %q", f.calls)
	}

	// The same over the wire, with the documented codes and bodies.
	for _, tc := range []struct {
		method, path, body string
		code               int
		errCode            string
	}{
		{"GET", "/v1/leases/" + id3, "", 404, CodeNotFound},
		{"POST", "/v1/leases/" + id3 + "/end", "", 404, CodeNotFound},
		{"POST", "/v1/leases/zn-XYZ/end", "", 400, CodeBadRequest},
		{"GET", "/v1/leases/..%2f..%2fetc", "", 404, CodeNotFound},
		{"POST", "/v1/leases/" + id1 + "/explode", "", 404, CodeNotFound},
		{"POST", "/v1/status", "", 405, CodeMethodNotAllowed},
		{"GET", "/v1/leases/" + id1 + "/end", "", 405, CodeMethodNotAllowed},
		{"GET", "/v2/status", "", 404, CodeNotFound},
		{"POST", "/v1/drain", `{"on": "yes"}`, 400, CodeBadRequest},
		{"POST", "/v1/drain", `{}`, 400, CodeBadRequest},
		{"POST", "/v1/drain", `{"on": true, "extra": 1}`, 400, CodeBadRequest},
		{"POST", "/v1/drain", strings.Repeat(" ", 5000) + `{"on": true}`, 400, CodeBadRequest},
		{"POST", "/v1/leases/" + id2 + "/resume", "", 409, CodeConflict},
	} {
		body, code := rawRequest(t, dir, tc.method, tc.path, tc.body)
		if code != tc.code {
			t.Errorf("%s %s: %d, want %d: %s", tc.method, tc.path, code, tc.code, body)
			continue
		}
		var eb struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Error.Code != tc.errCode || eb.Error.Message == "" {
			t.Errorf("%s %s: body %q, want error code %s and a message", tc.method, tc.path, body, tc.errCode)
		}
	}
	if f.st.Draining {
		t.Error("a bad drain request changed the provider")
	}
}

func TestProviderFailure(t *testing.T) {
	f := newFake()
	f.failWith = errors.New("lease book unavailable")
	_, _, c := serve(t, f)
	_, err := c.Status(context.Background())
	var ce *Error
	if !errors.As(err, &ce) || ce.Status != 500 || ce.Code != CodeInternal || ce.Message != "lease book unavailable" {
		t.Fatalf("got %#v", err)
	}
}

func TestSocketPermissions(t *testing.T) {
	dir, srv, _ := serve(t, newFake())
	path := SocketPath(dir)
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: mode %v, want a socket with 0600", path, fi.Mode())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("the data dir should hold only the socket: %v", ents)
	}
	if srv.Addr().String() != path {
		t.Fatalf("Addr %s, want %s", srv.Addr(), path)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after Close: %v", err)
	}
}

func TestStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := SocketPath(dir)
	// A socket nobody listens on, as a crash leaves it.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := Dial(dir); !errors.Is(err, ErrNoProvider) {
		t.Fatalf("dial a stale socket: %v, want ErrNoProvider", err)
	}
	srv, err := Serve(context.Background(), path, newFake())
	if err != nil {
		t.Fatalf("serve over a stale socket: %v", err)
	}
	defer srv.Close()
	c, err := Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestSocketInUse(t *testing.T) {
	dir, _, c := serve(t, newFake())
	_, err := Serve(context.Background(), SocketPath(dir), newFake())
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second server: %v, want ErrInUse", err)
	}
	// The first one still serves.
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Not a socket: refused, left alone.
	other := filepath.Join(t.TempDir(), SocketName)
	os.WriteFile(other, []byte("x"), 0o600)
	if _, err := Serve(context.Background(), other, newFake()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("serve over a file: %v", err)
	}
	if b, _ := os.ReadFile(other); string(b) != "x" {
		t.Fatal("the file was replaced")
	}
}

func TestCloseLeavesAnothersSocket(t *testing.T) {
	dir := t.TempDir()
	path := SocketPath(dir)
	srv, err := Serve(context.Background(), path, newFake())
	if err != nil {
		t.Fatal(err)
	}
	// Someone removes our socket and another server takes the path.
	os.Remove(path)
	srv2, err := Serve(context.Background(), path, newFake())
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	srv.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("closing the first server removed the second's socket: %v", err)
	}
}

func TestServeStopsWithContext(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := Serve(ctx, SocketPath(dir), newFake())
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	<-srv.done
	srv.Close() // waits for the removal the cancel started
	if _, err := Dial(dir); !errors.Is(err, ErrNoProvider) {
		t.Fatalf("dial after the server stopped: %v", err)
	}
}

func TestNoProvider(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "prov")
	_, err := Dial(dir)
	if !errors.Is(err, ErrNoProvider) {
		t.Fatalf("got %v, want ErrNoProvider", err)
	}
	want := "no provider is running on data dir " + dir + ": start one with 'zennet provide --data-dir " + dir + "'"
	if err.Error() != want {
		t.Fatalf("got %q\nwant %q", err, want)
	}

	// A provider that stops while a client holds on.
	d2, srv, c := serve(t, newFake())
	srv.Close()
	if _, err := c.Status(context.Background()); !errors.Is(err, ErrNoProvider) || !strings.Contains(err.Error(), d2) {
		t.Fatalf("status after the provider stopped: %v", err)
	}
}

func TestSocketPathTooLong(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 120))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Serve(context.Background(), SocketPath(dir), newFake()); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("got %v, want a too-long error", err)
	}
}

// rawRequest sends one HTTP request over the data dir's socket.
func rawRequest(t *testing.T, dir, method, path, body string) (string, int) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", SocketPath(dir))
	}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(method, "http://x"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}
