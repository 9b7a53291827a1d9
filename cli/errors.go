package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/renter"
	"github.com/zennet/zennet/sshgate"
)

// Exit codes: stable, documented in docs/user-guide.md.
const (
	ExitOK          = 0
	ExitError       = 1 // anything not listed below
	ExitUsage       = 2 // bad flags or arguments
	ExitUnreachable = 3 // no provider could be reached
	ExitCapacity    = 4 // providers reachable, but not enough hosts
	ExitConflict    = 5 // another process holds the resource (data dir in use)
	// ExitInterrupted is a command stopped by Ctrl-C or SIGTERM before it
	// was done (128 + SIGINT, as shells report it). Renting that is
	// holding hosts ends on Ctrl-C by design: that exits 0.
	ExitInterrupted = 130
)

// usageError marks a mistake in the command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// conflictError marks a resource held by another process.
type conflictError struct{ err error }

func (e conflictError) Error() string { return e.err.Error() }
func (e conflictError) Unwrap() error { return e.err }

// exitCode maps an error to the process exit code: the one place that does.
func exitCode(err error) int {
	var ue usageError
	var ce conflictError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, errInterrupted):
		return ExitInterrupted
	case errors.Is(err, context.Canceled):
		// A command that stops on Ctrl-C by design (a provider, a
		// dashboard) and said so by its context's error.
		return ExitOK
	case errors.As(err, &ue), errors.Is(err, renter.ErrNoProvider):
		return ExitUsage
	case errors.As(err, &ce):
		return ExitConflict
	case errors.Is(err, proto.ErrCapacity):
		return ExitCapacity
	case errors.Is(err, sshgate.ErrUnreachable):
		return ExitUnreachable
	}
	return ExitError
}

// causeError is a message of its own that still matches its cause with
// errors.Is, for the exit code.
type causeError struct {
	msg   string
	cause error
}

func (e causeError) Error() string { return e.msg }
func (e causeError) Unwrap() error { return e.cause }
