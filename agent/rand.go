package agent

import (
	"crypto/rand"
	"sync"
)

// sshRand is the agent's SSH servers' source of randomness: crypto/rand,
// read ahead a block at a time. x/crypto/ssh draws every packet's padding
// (4 to 19 bytes) from its Config.Rand, and crypto/rand makes a getrandom
// system call for each read; in a gVisor sandbox a system call costs tens
// of microseconds, and those calls were half of all the agent made during
// an scp (4,497 of 8,300 for 50 MB, counted with runsc --strace).
var sshRand = &readAhead{}

// readAhead serves reads from a block of crypto/rand's output, drawing a
// new block when it is used up. Every byte is handed out once and cleared
// from the block as it is.
type readAhead struct {
	mu   sync.Mutex
	buf  [4096]byte
	left int // unread bytes, at the end of buf
}

func (r *readAhead) Read(p []byte) (int, error) {
	if len(p) >= len(r.buf) {
		return rand.Read(p)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for n < len(p) {
		if r.left == 0 {
			rand.Read(r.buf[:]) // never fails (it crashes the program first)
			r.left = len(r.buf)
		}
		from := r.buf[len(r.buf)-r.left:]
		k := copy(p[n:], from)
		clear(from[:k])
		r.left -= k
		n += k
	}
	return n, nil
}
