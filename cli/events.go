package cli

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/renter"
)

// docStream is a renting command's --json output: a stream of documents,
// a line each (JSON Lines): the hosts, then events, then the receipts.
// Events come from the rental's goroutines, and before the hosts are
// ready: those are kept, and follow the hosts document (a rent that fails
// prints no stream, its events said on stderr alone). The lines never
// interleave.
type docStream struct {
	mu      sync.Mutex
	started bool
	queued  []cmdutil.EventDoc
}

// maxQueuedEvents bounds the events kept until the stream starts.
const maxQueuedEvents = 10000

// startStream prints the document that starts the stream (none when kind
// is "") and the events that came before it.
func (o *rentOptions) startStream(kind cmdutil.Kind, data any) error {
	s := &o.stream
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if kind != "" {
		err = cmdutil.WriteJSONLine(o.IO.Out, kind, data)
	}
	s.started = true
	for _, e := range s.queued {
		err = errors.Join(err, cmdutil.WriteJSONLine(o.IO.Out, cmdutil.KindEvent, e))
	}
	s.queued = nil
	return err
}

// writeDoc prints a document of the stream (the receipts, the run).
func (o *rentOptions) writeDoc(kind cmdutil.Kind, data any) error {
	o.stream.mu.Lock()
	defer o.stream.mu.Unlock()
	return cmdutil.WriteJSONLine(o.IO.Out, kind, data)
}

// streamEvent prints an event of the stream, or keeps it until the
// stream starts. A failed write is not said: stdout's reader is gone, and
// stderr has the event.
func (o *rentOptions) streamEvent(d cmdutil.EventDoc) {
	s := &o.stream
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		if len(s.queued) < maxQueuedEvents {
			s.queued = append(s.queued, d)
		}
		return
	}
	cmdutil.WriteJSONLine(o.IO.Out, cmdutil.KindEvent, d)
}

// eventDoc is a rental's event as a line of the --json stream.
func eventDoc(e renter.Event, now time.Time) cmdutil.EventDoc {
	d := cmdutil.EventDoc{Time: now.UTC(), Message: cmdutil.Printable(e.String(), true)}
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	switch e := e.(type) {
	case renter.Notice:
		d.Type = "notice"
	case renter.ProviderPath:
		d.Type, d.Provider, d.Path, d.Relayed = "provider-path", e.Address, e.Path, e.Relayed
	case renter.Dropped:
		d.Type, d.Host, d.Lease, d.Provider, d.Reason, d.Released = "dropped", e.Host, e.Lease, e.Provider, e.Reason, e.Released
	case renter.Ended:
		d.Type, d.Host, d.Lease, d.Provider, d.Reason = "ended", e.Host, e.Lease, e.Provider, e.Reason
		d.Cause, d.ProvidersFault = string(e.Cause), e.ProvidersFault
	case renter.ProviderLost:
		d.Type, d.Hosts, d.Error = "provider-lost", e.Hosts, errText(e.Err)
	case renter.Replaced:
		d.Type, d.Host, d.Provider, d.Lease = "replaced", e.Host, e.Provider, e.Lease
	case renter.ReplaceShort:
		d.Type, d.Got, d.Lost, d.Hosts, d.Error = "replace-short", e.Got, e.Lost, e.Holding, errText(e.Err)
	case renter.Explanation:
		d.Type, d.Provider, d.Reason = "explanation", e.Address, e.Reason
	case renter.ProbeResult:
		d.Type, d.Host, d.Provider, d.Failed, d.Error = "probe", e.Host, e.Provider, e.Err != nil, errText(e.Err)
	case renter.SpotCheck:
		d.Type, d.Host, d.Provider, d.Failed, d.Error = "spot-check", e.Host, e.Provider, e.Failed, errText(e.Err)
	default:
		d.Type = "notice"
	}
	return d
}

// printEvent says a rental's event on stderr: progress as a live line on
// a terminal only (and never with --json), the rest as a line each; with
// --json, each but progress is also a line (an event document) of the
// stream on stdout.
func (o *rentOptions) printEvent(e renter.Event) {
	if p, ok := e.(renter.Progress); ok {
		if o.holder != nil {
			o.holder.progress(p.Text) // the terminal of the command that started it, if any
		} else if cmdutil.IsTerminal(o.IO.ErrOut) && !o.JSON {
			fmt.Fprintf(o.IO.ErrOut, "\r\033[K%s", p.Text)
		}
		return
	}
	fmt.Fprintf(o.IO.ErrOut, "zennet: %s\n", cmdutil.Printable(e.String(), true))
	if o.JSON {
		o.streamEvent(eventDoc(e, time.Now()))
	}
}
