package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/renter"
)

func TestEventDoc(t *testing.T) {
	now := time.Date(2026, 12, 7, 20, 0, 0, 0, time.FixedZone("x", 3600))
	for _, tt := range []struct {
		name string
		e    renter.Event
		want cmdutil.EventDoc
	}{
		{"notice", renter.Notice{Text: "a note"}, cmdutil.EventDoc{Type: "notice", Message: "a note"}},
		{"ended", renter.Ended{Host: "zennet-1", Lease: "zn-1", Provider: "p:1", Reason: "out of memory", Cause: proto.EndMemoryExceeded},
			cmdutil.EventDoc{Type: "ended", Host: "zennet-1", Lease: "zn-1", Provider: "p:1", Reason: "out of memory", Cause: "memory_exceeded"}},
		{"dropped", renter.Dropped{Host: "zennet-2", Lease: "zn-2", Provider: "p:1", Reason: "over-asked", Released: true},
			cmdutil.EventDoc{Type: "dropped", Host: "zennet-2", Lease: "zn-2", Provider: "p:1", Reason: "over-asked", Released: true}},
		{"provider lost", renter.ProviderLost{Err: errors.New("p:1 closed the connection"), Hosts: 2},
			cmdutil.EventDoc{Type: "provider-lost", Hosts: 2, Error: "p:1 closed the connection"}},
		{"replace short", renter.ReplaceShort{Got: 1, Lost: 2, Holding: 3},
			cmdutil.EventDoc{Type: "replace-short", Got: 1, Lost: 2, Hosts: 3}},
		{"spot check failed", renter.SpotCheck{Provider: "p:1", Host: "zennet-1", Failed: true, Marks: "/m"},
			cmdutil.EventDoc{Type: "spot-check", Provider: "p:1", Host: "zennet-1", Failed: true}},
		// A provider's text reaches the message escaped: one line, no
		// escape sequences.
		{"control characters", renter.Notice{Text: "a\nb\x1b[2J"}, cmdutil.EventDoc{Type: "notice", Message: `a\nb\x1b[2J`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := eventDoc(tt.e, now)
			if !got.Time.Equal(now) || got.Time.Location() != time.UTC {
				t.Errorf("time %v, want %v in UTC", got.Time, now)
			}
			if tt.name != "control characters" && got.Message != tt.e.String() {
				t.Errorf("message %q, want the event's sentence %q", got.Message, tt.e.String())
			}
			got.Time = time.Time{}
			if tt.name != "control characters" {
				tt.want.Message = tt.e.String()
			}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// The stream: the hosts first, the events that came before them next, then
// the later ones, the receipts last; every document one line.
func TestStream(t *testing.T) {
	var out, errOut bytes.Buffer
	o := &rentOptions{IO: cmdutil.IOStreams{Out: &out, ErrOut: &errOut}, JSON: true}
	o.printEvent(renter.Notice{Text: "before"})
	o.printEvent(renter.Progress{Text: "never in the stream"})
	if out.Len() != 0 {
		t.Fatalf("an event printed before the hosts: %q", out.String())
	}
	if err := printHosts(o, cmdutil.HostsDoc{Session: "s", Hosts: []cmdutil.HostJSON{{Name: "zennet-1"}}}, nil); err != nil {
		t.Fatal(err)
	}
	o.printEvent(renter.Replaced{Host: "zennet-1", Provider: "p:2", Lease: "zn-2"})
	if err := printReceipts(o, []renter.Receipt{{Name: "zennet-1"}}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	var kinds []string
	for _, l := range lines {
		var e struct {
			Kind string `json:"kind"`
			Data struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		kinds = append(kinds, e.Kind+"/"+e.Data.Type+"/"+e.Data.Message)
	}
	want := "hosts//,event/notice/before,event/replaced/replaced zennet-1 with a host of provider p:2 (lease zn-2),receipts//"
	if got := strings.Join(kinds, ","); got != want {
		t.Fatalf("stream %s\nwant %s", got, want)
	}
	if !strings.Contains(errOut.String(), "zennet: before\n") || strings.Contains(errOut.String(), "never in the stream") {
		t.Errorf("stderr %q: want the events' lines, no progress", errOut.String())
	}
}
