package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"syscall"
	"time"
)

// Client talks to a running provider's control socket. It implements
// Provider, so what works on a provider in-process works over the socket.
type Client struct {
	dataDir string
	path    string
	hc      *http.Client
}

var _ Provider = (*Client)(nil)

// Dial connects to the control socket of the provider on dataDir. If no
// provider runs there, the error matches ErrNoProvider and says how to
// start one.
func Dial(dataDir string) (*Client, error) {
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	c := &Client{dataDir: dataDir, path: SocketPath(dataDir)}
	conn, err := net.DialTimeout("unix", c.path, 5*time.Second)
	if err != nil {
		return nil, c.dialError(err)
	}
	conn.Close()
	var d net.Dialer
	c.hc = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", c.path)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}}
	return c, nil
}

// DataDir returns the data dir of the provider c talks to.
func (c *Client) DataDir() string { return c.dataDir }

// Close releases the client's idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// noProviderError says that nothing serves a data dir's control socket.
type noProviderError struct {
	dataDir string
	err     error
}

func (e *noProviderError) Error() string {
	return fmt.Sprintf("no provider is running on data dir %s: start one with 'zennet provide --data-dir %s'", e.dataDir, e.dataDir)
}

func (e *noProviderError) Is(target error) bool { return target == ErrNoProvider }
func (e *noProviderError) Unwrap() error        { return e.err }

func (c *Client) dialError(err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		return &noProviderError{dataDir: c.dataDir, err: err}
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("no permission to use the control socket %s: run as the user that runs the provider", c.path)
	}
	return fmt.Errorf("control socket %s: %w", c.path, err)
}

// Status returns the provider's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// Lease returns one lease's status.
func (c *Client) Lease(ctx context.Context, id string) (LeaseStatus, error) {
	var l LeaseStatus
	if err := checkIDError(id); err != nil {
		return l, err
	}
	err := c.do(ctx, http.MethodGet, "/v1/leases/"+id, nil, &l)
	return l, err
}

// Pause pauses a lease.
func (c *Client) Pause(ctx context.Context, id string) error { return c.act(ctx, id, "pause") }

// Resume resumes a lease the operator paused.
func (c *Client) Resume(ctx context.Context, id string) error { return c.act(ctx, id, "resume") }

// End ends a lease and destroys its sandbox.
func (c *Client) End(ctx context.Context, id string) error { return c.act(ctx, id, "end") }

// Drain turns draining on or off.
func (c *Client) Drain(ctx context.Context, on bool) error {
	return c.do(ctx, http.MethodPost, "/v1/drain", DrainRequest{On: &on}, nil)
}

func (c *Client) act(ctx context.Context, id, action string) error {
	if err := checkIDError(id); err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, "/v1/leases/"+id+"/"+action, nil, nil)
}

func checkIDError(id string) error {
	if e := checkID(id); e != nil {
		return e
	}
	return nil
}

// do sends one request; out, if not nil, receives the JSON answer.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://zennet-provider"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return c.dialError(err)
		}
		return fmt.Errorf("control socket %s: %w", c.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("control socket %s: %w", c.path, err)
	}
	if resp.StatusCode >= 400 {
		var eb errorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error == nil || eb.Error.Message == "" {
			return &Error{Status: resp.StatusCode, Code: CodeInternal,
				Message: fmt.Sprintf("control socket %s: %s", c.path, resp.Status)}
		}
		eb.Error.Status = resp.StatusCode
		return eb.Error
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("control socket %s: bad answer to %s %s: %w", c.path, method, path, err)
	}
	return nil
}
