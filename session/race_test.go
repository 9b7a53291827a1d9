package session

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestOpenWhileLiveReaps is the hosts.json race of limits.txtar: another
// process (there, the test's waithosts) calls Live, which removes the
// directories of sessions whose lock it can take. A session being opened,
// its lock file made but not yet locked, must not lose its directory:
// every session Open returns can write its files.
func TestOpenWhileLiveReaps(t *testing.T) {
	root := t.TempDir()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := Live(root); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; i < 300 && time.Now().Before(deadline); i++ {
		s, err := Open(root)
		if err != nil {
			t.Errorf("open %d: %v", i, err)
			break
		}
		_, werr := s.ReserveNames(1)
		s.Close()
		if werr != nil {
			t.Errorf("session %d lost its directory: %v", i, werr)
			break
		}
	}
	close(stop)
	wg.Wait()
}

// TestWriteCloseConcurrent: the renter rewrites a session's files (a host
// dropped, the usage flushed) while the session may be closing. Writes
// are serialized, and a write after Close fails with ErrClosed instead of
// recreating files or tripping over the removed directory.
func TestWriteCloseConcurrent(t *testing.T) {
	for range 20 {
		s, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		names, err := s.ReserveNames(3)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := range 3 {
			wg.Go(func() {
				for i := range 20 {
					var err error
					switch (w + i) % 3 {
					case 0:
						_, err = s.Write(hosts(names[:1+i%3], 40000), "/k/id")
					case 1:
						err = s.WriteUsage([]Usage{{Name: names[0]}})
					default:
						_, err = s.ReserveNames(3)
					}
					if err != nil && !errors.Is(err, ErrClosed) {
						t.Errorf("writer %d: %v", w, err)
						return
					}
				}
			})
		}
		wg.Go(func() {
			time.Sleep(time.Duration(len(names)) * 100 * time.Microsecond)
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
		wg.Wait()
		if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
			t.Fatalf("a write after Close left %s behind (%v)", s.Dir, err)
		}
		if _, err := s.Write(nil, "/k/id"); !errors.Is(err, ErrClosed) {
			t.Fatalf("Write after Close: %v, want ErrClosed", err)
		}
	}
}

// TestLiveStaging: a directory still being made is never taken for a
// crashed run's leftovers, but one left by a run that died while opening
// its session is removed once it is old.
func TestLiveStaging(t *testing.T) {
	root := t.TempDir()
	sessions := filepath.Join(root, "sessions")
	fresh := filepath.Join(sessions, staging+"fresh")
	old := filepath.Join(sessions, staging+"old")
	for _, d := range []string{fresh, old} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * stagingMaxAge)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	recs, err := Live(root)
	if err != nil || len(recs) != 0 {
		t.Fatalf("Live = %v, %v; want no records", recs, err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a session being opened lost its directory: %v", err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("a stale staging directory was kept (%v)", err)
	}
}
