package cmdutil

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

// UsageError marks a mistake in the command line.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

func Usagef(format string, a ...any) error { return UsageError{Err: fmt.Errorf(format, a...)} }

// ConflictError marks a resource held by another process.
type ConflictError struct{ Err error }

func (e ConflictError) Error() string { return e.Err.Error() }
func (e ConflictError) Unwrap() error { return e.Err }

// ReportedError is a failure already said, by a zennet process of its own
// whose output was passed on (a detached holder that failed before its
// hosts were ready): only its exit code is left, and nothing is printed.
type ReportedError struct{ Code int }

func (e ReportedError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// ExitCode maps an error to the process exit code: the one place that does.
func ExitCode(err error) int {
	var ue UsageError
	var ce ConflictError
	var re ReportedError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &re):
		return re.Code
	case errors.Is(err, ErrInterrupted):
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

// CauseError is a message of its own that still matches its cause with
// errors.Is, for the exit code.
type CauseError struct {
	Msg   string
	Cause error
}

func (e CauseError) Error() string { return e.Msg }
func (e CauseError) Unwrap() error { return e.Cause }
