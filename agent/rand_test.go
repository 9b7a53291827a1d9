package agent

import (
	"bytes"
	"testing"
)

// TestReadAhead: reads of every size, across block ends, fill all they
// ask and never hand out a byte twice (no 16-byte run repeats in 1 MiB,
// which a block served twice would repeat); a large read is served whole.
func TestReadAhead(t *testing.T) {
	r := &readAhead{}
	var all []byte
	for size := 1; len(all) < 1<<20; size = size%37 + 1 {
		p := make([]byte, size)
		if n, err := r.Read(p); n != size || err != nil {
			t.Fatalf("Read(%d bytes) = %d, %v", size, n, err)
		}
		all = append(all, p...)
	}
	seen := map[[16]byte]bool{}
	for i := 0; i+16 <= len(all); i += 16 {
		var k [16]byte
		copy(k[:], all[i:])
		if seen[k] {
			t.Fatalf("the 16 bytes at %d came before: bytes handed out twice", i)
		}
		seen[k] = true
	}
	big := make([]byte, 10000)
	if n, err := r.Read(big); n != len(big) || err != nil || bytes.Count(big, []byte{0}) > 200 {
		t.Fatalf("a large read: %d, %v, %d zero bytes", n, err, bytes.Count(big, []byte{0}))
	}
}
