package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zennet/zennet/proto"
)

// SocketName is the control socket's file name in the provider's data dir.
const SocketName = "control.sock"

// SocketPath returns the control socket of the provider on dataDir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketName) }

// maxSocketPath is the longest path a unix socket can be bound to
// (sun_path is 108 bytes with its terminating NUL on Linux).
const maxSocketPath = 107

// Server is a running control or metrics server.
type Server struct {
	srv  *http.Server
	l    net.Listener
	addr net.Addr
	// path is the unix socket this server removes when it stops, and ino
	// the socket's inode, so that it never removes another's socket.
	path string
	ino  uint64

	once sync.Once
	err  error
	done chan struct{}
}

// Addr returns where the server listens.
func (s *Server) Addr() net.Addr { return s.addr }

// Close stops the server: it stops listening, lets requests in flight
// finish for a moment, then closes every connection. A unix socket is
// removed.
func (s *Server) Close() error {
	s.once.Do(func() {
		close(s.done)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.srv.Close()
		}
		if s.path != "" {
			var st syscall.Stat_t
			if syscall.Lstat(s.path, &st) == nil && st.Ino == s.ino {
				if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
					s.err = err
				}
			}
		}
	})
	return s.err
}

// start serves h on l until ctx ends or Close.
func start(ctx context.Context, l net.Listener, addr net.Addr, h http.Handler, path string, ino uint64) *Server {
	s := &Server{
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: log.New(io.Discard, "", 0)},
		l: l, addr: addr, done: make(chan struct{}), path: path, ino: ino,
	}
	go s.srv.Serve(l)
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.done:
		}
	}()
	return s
}

// Serve serves the control API for p on the unix socket path (normally
// SocketPath(dataDir)) until ctx ends or the server is closed. The socket
// is only ever reachable with mode 0600: it is bound in a private
// directory, made 0600 there, then renamed into place. A stale socket left
// by a crash is replaced; if another process serves path, Serve fails with
// ErrInUse.
func Serve(ctx context.Context, path string, p Provider) (*Server, error) {
	l, ino, err := listenUnix(path)
	if err != nil {
		return nil, err
	}
	return start(ctx, l, &net.UnixAddr{Name: path, Net: "unix"}, Handler(p), path, ino), nil
}

func listenUnix(path string) (net.Listener, uint64, error) {
	if len(path) > maxSocketPath {
		return nil, 0, fmt.Errorf("control socket path %s is longer than %d bytes, too long for a unix socket: use a shorter data dir", path, maxSocketPath)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, 0, fmt.Errorf("%s exists and is not a socket: remove it", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, 0, fmt.Errorf("%w: another process serves %s", ErrInUse, path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, 0, fmt.Errorf("check control socket %s: %w", path, err)
		}
		// Stale: nobody listens. The rename below replaces it.
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".c") // 0700
	if err != nil {
		return nil, 0, fmt.Errorf("control socket: %w", err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	if len(tmp) > maxSocketPath {
		return nil, 0, fmt.Errorf("control socket path %s is too long for a unix socket: use a shorter data dir", tmp)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, 0, fmt.Errorf("control socket: %w", err)
	}
	l.SetUnlinkOnClose(false)
	var st syscall.Stat_t
	err = os.Chmod(tmp, 0o600)
	if err == nil {
		err = syscall.Lstat(tmp, &st)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		l.Close()
		return nil, 0, fmt.Errorf("control socket: %w", err)
	}
	return l, st.Ino, nil
}

// maxBody bounds a request's body.
const maxBody = 4 << 10

// Handler returns the control API for p:
//
//	GET  /v1/status                  Status
//	GET  /v1/leases                  the leases of Status
//	GET  /v1/leases/{id}             one LeaseStatus
//	POST /v1/leases/{id}/pause       204
//	POST /v1/leases/{id}/resume      204
//	POST /v1/leases/{id}/end         204
//	POST /v1/drain  {"on": BOOL}     204
//
// Errors are {"error": {"code", "message"}} with 400, 404, 405, 409 or 500.
func Handler(p Provider) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := route(p, w, r); err != nil {
			writeError(w, err)
		}
	})
}

func route(p Provider, w http.ResponseWriter, r *http.Request) *Error {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 2 || parts[0] != "v1" {
		return notFoundf("no such endpoint: %s", r.URL.Path)
	}
	switch {
	case len(parts) == 2 && parts[1] == "status":
		if e := method(r, http.MethodGet); e != nil {
			return e
		}
		st, err := status(r.Context(), p)
		if err != nil {
			return toError(err)
		}
		return writeOK(w, st)
	case len(parts) == 2 && parts[1] == "leases":
		if e := method(r, http.MethodGet); e != nil {
			return e
		}
		st, err := status(r.Context(), p)
		if err != nil {
			return toError(err)
		}
		return writeOK(w, st.Leases)
	case len(parts) == 3 && parts[1] == "leases":
		if e := method(r, http.MethodGet); e != nil {
			return e
		}
		id := parts[2]
		if e := checkID(id); e != nil {
			return e
		}
		st, err := status(r.Context(), p)
		if err != nil {
			return toError(err)
		}
		l, ok := st.Lease(id)
		if !ok {
			return notFoundf("no lease %s on this provider", id)
		}
		return writeOK(w, l)
	case len(parts) == 4 && parts[1] == "leases":
		if e := method(r, http.MethodPost); e != nil {
			return e
		}
		id := parts[2]
		var act func(context.Context, string) error
		switch parts[3] {
		case "pause":
			act = p.Pause
		case "resume":
			act = p.Resume
		case "end":
			act = p.End
		default:
			return notFoundf("no such action %q: one of pause, resume, end", parts[3])
		}
		if e := checkID(id); e != nil {
			return e
		}
		if err := act(r.Context(), id); err != nil {
			return toError(err)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	case len(parts) == 2 && parts[1] == "drain":
		if e := method(r, http.MethodPost); e != nil {
			return e
		}
		var req DrainRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return badRequestf("drain: the body must be {\"on\": true|false}: %v", err)
		}
		if req.On == nil {
			return badRequestf("drain: the body must be {\"on\": true|false}")
		}
		if err := p.Drain(r.Context(), *req.On); err != nil {
			return toError(err)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return notFoundf("no such endpoint: %s", r.URL.Path)
}

// DrainRequest is the body of POST /v1/drain.
type DrainRequest struct {
	On *bool `json:"on"`
}

func method(r *http.Request, m string) *Error {
	if r.Method != m {
		return &Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed,
			Message: fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, m)}
	}
	return nil
}

func checkID(id string) *Error {
	if !proto.ValidLeaseID(id) {
		return badRequestf("%q is not a lease id (zn- and 17 hex digits)", id)
	}
	return nil
}

// status asks p for a snapshot and normalises it for JSON: a time, and
// empty lists rather than null.
func status(ctx context.Context, p Provider) (Status, error) {
	st, err := p.Status(ctx)
	if err != nil {
		return Status{}, err
	}
	if st.Time.IsZero() {
		st.Time = time.Now()
	}
	if st.Leases == nil {
		st.Leases = []LeaseStatus{}
	}
	if st.Payments == nil {
		st.Payments = []PaymentEvent{}
	}
	if st.Log == nil {
		st.Log = []LogLine{}
	}
	return st, nil
}

func writeOK(w http.ResponseWriter, v any) *Error {
	b, err := json.Marshal(v)
	if err != nil {
		return toError(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
	return nil
}

func writeError(w http.ResponseWriter, e *Error) {
	if e.Status == 0 {
		e.Status = http.StatusInternalServerError
	}
	if e.Code == "" {
		e.Code = CodeInternal
	}
	b, _ := json.Marshal(errorBody{Error: e})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	w.Write(append(b, '\n'))
}
