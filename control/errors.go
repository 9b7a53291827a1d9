package control

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/provider"
)

// Errors a Provider returns (wrapped or not) to get the matching answer on
// the socket; a Client's errors match them with errors.Is.
var (
	// ErrNotFound: no lease with that id (404).
	ErrNotFound = proto.ErrNotFound
	// ErrConflict: the lease is not in a state that allows the action,
	// e.g. resuming a running lease or pausing an ended one (409).
	ErrConflict = provider.ErrConflict
	// ErrBadRequest: the request itself is wrong, e.g. a malformed lease
	// id (400).
	ErrBadRequest = proto.ErrBadRequest
	// ErrNoProvider: nothing serves the control socket (Client only).
	ErrNoProvider = errors.New("no provider running")
	// ErrInUse: another process serves the control socket (Serve only).
	ErrInUse = errors.New("control socket in use")
)

// Error codes on the socket.
const (
	CodeNotFound   = "not-found"
	CodeConflict   = "conflict"
	CodeBadRequest = "bad-request"
	CodeInternal   = "internal"

	CodeMethodNotAllowed = "method-not-allowed"
)

// Error is an error answered by the control socket.
type Error struct {
	// Status is the HTTP status code.
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Is matches the sentinel errors by code.
func (e *Error) Is(target error) bool {
	switch e.Code {
	case CodeNotFound:
		return target == ErrNotFound
	case CodeConflict:
		return target == ErrConflict
	case CodeBadRequest:
		return target == ErrBadRequest
	}
	return false
}

// errorBody is the JSON of every error answer: {"error": {code, message}}.
type errorBody struct {
	Error *Error `json:"error"`
}

// toError maps a Provider's error to the socket's answer.
func toError(err error) *Error {
	var ce *Error
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.Is(err, ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: err.Error()}
	case errors.Is(err, ErrConflict):
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: err.Error()}
	case errors.Is(err, ErrBadRequest):
		return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusGatewayTimeout, Code: CodeInternal, Message: err.Error()}
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: err.Error()}
}

func badRequestf(format string, a ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: fmt.Sprintf(format, a...)}
}

func notFoundf(format string, a ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: fmt.Sprintf(format, a...)}
}
