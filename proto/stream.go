package proto

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Reader reads newline-delimited messages, refusing any longer than
// MaxMessageSize.
type Reader struct{ br *bufio.Reader }

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader { return &Reader{br: bufio.NewReaderSize(r, 64<<10)} }

// Next returns the next message. io.EOF means the stream ended cleanly.
func (r *Reader) Next() (Message, error) {
	var line []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxMessageSize {
			return Message{}, fmt.Errorf("message exceeds %d bytes", MaxMessageSize)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(line) > 0 {
				return Message{}, io.ErrUnexpectedEOF
			}
			return Message{}, err
		}
		return Decode(line)
	}
}

// Writer writes messages; it is safe for concurrent use.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Send encodes and writes m.
func (w *Writer) Send(m Message) error {
	b, err := Encode(m)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err = w.w.Write(b)
	return err
}

// ErrorMessage wraps err as an error message for the wire, keeping its code.
func ErrorMessage(err error) Message {
	code := CodeInternal
	switch {
	case errors.Is(err, ErrCapacity):
		code = CodeCapacity
	case errors.Is(err, ErrBadRequest):
		code = CodeBadRequest
	case errors.Is(err, ErrVersion):
		code = CodeVersion
	case errors.Is(err, ErrNotFound):
		code = CodeNotFound
	}
	return Message{Type: TypeError, Error: &Error{Code: code, Message: err.Error()}}
}
