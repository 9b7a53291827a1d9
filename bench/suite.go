package bench

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"syscall"
)

// SuiteName and SuiteVersion name the canonical suite in calibration sets.
// Bump SuiteVersion whenever a workload's kernel, parameters or units
// change: scores of different versions are not comparable.
const (
	SuiteName    = "zennet-canonical"
	SuiteVersion = "1"
)

// suite is the canonical suite. Each workload's Doc lists its parameters;
// RandomParams draws them uniformly from the listed choices.
var suite = []*Workload{
	{
		Name: "int",
		Unit: "ops",
		Doc: "integer compute. kernel=mix: xorshift, multiply and add on 64-bit words, one op per iteration; " +
			"kernel=div: the same with a 64-bit division per iteration; kernel=sieve: a sieve of Eratosthenes " +
			"over n numbers (n=65536..4194304), one op per number per pass",
		random: func(r *rand.Rand) Params {
			return Params{"kernel": pick(r, "mix", "div", "sieve"), "n": itoa(1 << (16 + r.IntN(7)))}
		},
		prepare: prepareInt,
	},
	{
		Name: "float",
		Unit: "flops",
		Doc: "floating-point compute. kernel=matmul: n×n float64 matrix products (n=32..192), 2n³ flops each; " +
			"kernel=transcend: sqrt, exp, sin and a division per iteration, counted as 4 flops",
		random: func(r *rand.Rand) Params {
			return Params{"kernel": pick(r, "matmul", "transcend"), "n": itoa(int64(32 + 32*r.IntN(6)))}
		},
		prepare: prepareFloat,
	},
	{
		Name: "membw",
		Unit: "bytes",
		Doc: "memory bandwidth over buffers of mib MiB in all (16..128, split between workers). op=copy: " +
			"copy one buffer to another, op=fill: clear a buffer, op=sum: read a buffer; bytes copied, written or read",
		random: func(r *rand.Rand) Params {
			return Params{"op": pick(r, "copy", "fill", "sum"), "mib": itoa(int64(pick(r, 16, 32, 64, 128)))}
		},
		prepare: prepareMembw,
	},
	{
		Name: "memlat",
		Unit: "loads",
		Doc: "memory latency: pointer chasing through one random cycle over mib MiB (1..128) of 64-byte " +
			"nodes, each worker from its own start; one op per dependent load",
		random: func(r *rand.Rand) Params {
			return Params{"mib": itoa(int64(pick(r, 1, 4, 16, 64, 128)))}
		},
		prepare: prepareMemlat,
	},
	{
		Name: "syscall",
		Unit: "syscalls",
		Doc: "system calls. kind=getppid: getppid; kind=pipe: write and read one byte on a pipe; " +
			"kind=openclose: open, read 4 KiB of and close /etc/passwd; kind=stat: stat /etc/passwd",
		random: func(r *rand.Rand) Params {
			return Params{"kind": pick(r, "getppid", "pipe", "openclose", "stat")}
		},
		prepare: prepareSyscall,
	},
	{
		Name: "fileio",
		Unit: "bytes",
		Doc: "file I/O: each worker writes a file of mib/workers MiB (mib=4..64 in all) in blocks of block " +
			"bytes (4096..1048576), fsyncs it if fsync=1, reads it back and removes it; dir=root puts the " +
			"files in the root overlay (/root), dir=tmp in the sandbox's tmpfs (/tmp); bytes written plus read",
		random: func(r *rand.Rand) Params {
			return Params{
				"dir":   pick(r, "root", "tmp"),
				"mib":   itoa(int64(pick(r, 4, 16, 64))),
				"block": itoa(int64(pick(r, 4096, 16384, 65536, 262144, 1048576))),
				"fsync": pick(r, "0", "1"),
			}
		},
		prepare: prepareFileIO,
	},
	{
		Name: "spawn",
		Unit: "processes",
		Doc:  "process creation: fork and exec of /bin/true (prog=true) or /bin/sh -c 'exit 0' (prog=sh), waited for; one op per process",
		random: func(r *rand.Rand) Params {
			return Params{"prog": pick(r, "true", "sh")}
		},
		prepare: prepareSpawn,
	},
	{
		Name: "tcp",
		Unit: "bytes",
		Doc: "loopback TCP over 127.0.0.1 inside the sandbox, one connection per worker. mode=stream: " +
			"the client writes msg-byte messages (1024..262144) that the server discards; mode=pingpong: " +
			"msg bytes (64..4096) each way per round trip; bytes carried",
		random: func(r *rand.Rand) Params {
			if r.IntN(2) == 0 {
				return Params{"mode": "stream", "msg": itoa(int64(pick(r, 1024, 16384, 65536, 262144)))}
			}
			return Params{"mode": "pingpong", "msg": itoa(int64(pick(r, 64, 512, 4096)))}
		},
		prepare: prepareTCP,
	},
	{
		Name: "compress",
		Unit: "bytes",
		Doc: "DEFLATE (compress/flate) at level 1..9 over chunks of chunk bytes (65536..1048576) of data=text " +
			"(words), data=mixed (half text, half random) or data=random; mode=deflate compresses, mode=inflate " +
			"decompresses; uncompressed bytes",
		random: func(r *rand.Rand) Params {
			return Params{
				"mode":  pick(r, "deflate", "deflate", "inflate"),
				"level": itoa(int64(1 + r.IntN(9))),
				"chunk": itoa(int64(pick(r, 65536, 262144, 1048576))),
				"data":  pick(r, "text", "mixed", "random"),
			}
		},
		prepare: prepareCompress,
	},
	{
		Name:   "hash",
		Unit:   "bytes",
		Doc:    "SHA-256 over blocks of block bytes (64..1048576); bytes hashed",
		random: func(r *rand.Rand) Params { return Params{"block": itoa(int64(pick(r, 64, 1024, 16384, 1048576)))} },
		prepare: func(p Params, workers int) (func(int, *stopper) float64, func(), error) {
			block, err := p.int("block", 1, 16<<20)
			if err != nil || workers == 0 {
				return nil, nil, err
			}
			bufs := make([][]byte, workers)
			for i := range bufs {
				bufs[i] = randomBytes(uint64(i), int(block))
			}
			// At least 64 KiB between looks at the clock.
			per := max(1, 65536/int(block))
			return func(i int, stop *stopper) float64 {
				var ops float64
				var s [32]byte
				for !stop.done() {
					for range per {
						s = sha256.Sum256(bufs[i])
						bufs[i][0] ^= s[0]
					}
					ops += float64(per) * float64(block)
				}
				sink.Add(uint64(s[1]))
				return ops
			}, nil, nil
		},
	},
}

func prepareInt(p Params, workers int) (func(int, *stopper) float64, func(), error) {
	kernel, err := p.word("kernel", "mix", "div", "sieve")
	if err != nil {
		return nil, nil, err
	}
	n, err := p.int("n", 2, 1<<26)
	if err != nil {
		return nil, nil, err
	}
	if workers == 0 {
		return nil, nil, nil
	}
	switch kernel {
	case "sieve":
		sieves := make([][]bool, workers)
		for i := range sieves {
			sieves[i] = make([]bool, n)
		}
		return func(i int, stop *stopper) float64 {
			var ops float64
			composite := sieves[i]
			for !stop.done() {
				clear(composite)
				primes := 0
				for k := int64(2); k < n; k++ {
					if composite[k] {
						continue
					}
					primes++
					for m := k * k; m < n; m += k {
						composite[m] = true
					}
				}
				sink.Add(uint64(primes))
				ops += float64(n)
			}
			return ops
		}, nil, nil
	default:
		div := kernel == "div"
		const per = 1 << 14
		return func(i int, stop *stopper) float64 {
			var ops float64
			x, acc := uint64(i)*0x9E3779B97F4A7C15|1, uint64(0)
			for !stop.done() {
				for k := uint64(1); k <= per; k++ {
					x ^= x << 13
					x ^= x >> 7
					x ^= x << 17
					acc += x * 0x2545F4914F6CDD1D
					if div {
						acc += x / (k | acc>>60 | 3)
					}
					acc = bits.RotateLeft64(acc, 5)
				}
				ops += per
			}
			sink.Add(acc)
			return ops
		}, nil, nil
	}
}

func prepareFloat(p Params, workers int) (func(int, *stopper) float64, func(), error) {
	kernel, err := p.word("kernel", "matmul", "transcend")
	if err != nil {
		return nil, nil, err
	}
	n, err := p.int("n", 2, 1024)
	if err != nil {
		return nil, nil, err
	}
	if workers == 0 {
		return nil, nil, nil
	}
	if kernel == "transcend" {
		const per = 1 << 12
		return func(i int, stop *stopper) float64 {
			var ops float64
			acc := 0.0
			x := 0.5 + float64(i)
			for !stop.done() {
				for range per {
					x = math.Sqrt(x+1.5) + math.Exp(-x)
					acc += math.Sin(x) / (x + 0.25)
				}
				ops += 4 * per
			}
			sink.Add(uint64(math.Float64bits(acc) & 1))
			return ops
		}, nil, nil
	}
	type mats struct{ a, b, c []float64 }
	ms := make([]mats, workers)
	for w := range ms {
		r := rand.New(rand.NewPCG(uint64(w), 1))
		m := mats{make([]float64, n*n), make([]float64, n*n), make([]float64, n*n)}
		for k := range m.a {
			m.a[k], m.b[k] = r.Float64()-0.5, r.Float64()-0.5
		}
		ms[w] = m
	}
	flops := 2 * float64(n) * float64(n) * float64(n)
	return func(i int, stop *stopper) float64 {
		var ops float64
		m := ms[i]
		for !stop.done() {
			// i-k-j order: the inner loop streams rows of b and c.
			clear(m.c)
			for r := int64(0); r < n; r++ {
				cr := m.c[r*n : (r+1)*n]
				for k := int64(0); k < n; k++ {
					a := m.a[r*n+k]
					br := m.b[k*n : (k+1)*n]
					for j := range cr {
						cr[j] += a * br[j]
					}
				}
			}
			ops += flops
		}
		sink.Add(uint64(math.Float64bits(m.c[0]) & 1))
		return ops
	}, nil, nil
}

func prepareMembw(p Params, workers int) (func(int, *stopper) float64, func(), error) {
	op, err := p.word("op", "copy", "fill", "sum")
	if err != nil {
		return nil, nil, err
	}
	mib, err := p.int("mib", 1, 4096)
	if err != nil {
		return nil, nil, err
	}
	if workers == 0 {
		return nil, nil, nil
	}
	size := max(1<<20, int(mib<<20)/workers) &^ 7
	type bufs struct{ src, dst []byte }
	bs := make([]bufs, workers)
	for w := range bs {
		// Touch every page now, so that the run faults none in.
		b := bufs{dst: make([]byte, size)}
		fillPattern(b.dst, uint64(w))
		if op == "copy" {
			b.src = make([]byte, size)
			fillPattern(b.src, uint64(w)+1)
		}
		bs[w] = b
	}
	return func(i int, stop *stopper) float64 {
		var ops float64
		b := bs[i]
		// Chunks of 1 MiB between looks at the clock.
		const chunk = 1 << 20
		var acc uint64
		for !stop.done() {
			for off := 0; off < size && !stop.done(); off += chunk {
				end := min(off+chunk, size)
				switch op {
				case "copy":
					copy(b.dst[off:end], b.src[off:end])
				case "fill":
					clear(b.dst[off:end])
				case "sum":
					acc += sumWords(b.dst[off:end])
				}
				ops += float64(end - off)
			}
		}
		sink.Add(acc)
		return ops
	}, nil, nil
}

// fillPattern writes pseudo-random words over b, touching every page.
func fillPattern(b []byte, seed uint64) {
	x := seed*0x9E3779B97F4A7C15 | 1
	for i := 0; i+8 <= len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[i:], x)
	}
}

func sumWords(b []byte) uint64 {
	var s0, s1, s2, s3 uint64
	for len(b) >= 32 {
		s0 += uint64(b[0]) | uint64(b[7])<<8
		s1 += uint64(b[8]) | uint64(b[15])<<8
		s2 += uint64(b[16]) | uint64(b[23])<<8
		s3 += uint64(b[24]) | uint64(b[31])<<8
		b = b[32:]
	}
	return s0 + s1 + s2 + s3
}

func prepareMemlat(p Params, workers int) (func(int, *stopper) float64, func(), error) {
	mib, err := p.int("mib", 1, 4096)
	if err != nil {
		return nil, nil, err
	}
	if workers == 0 {
		return nil, nil, nil
	}
	// One node per cache line; next holds the index of the next node of
	// one random cycle through all of them (Sattolo's algorithm).
	type node struct {
		next uint32
		_    [60]byte
	}
	n := int(mib << 20 / 64)
	nodes := make([]node, n)
	perm := make([]uint32, n)
	for i := range perm {
		perm[i] = uint32(i)
	}
	r := rand.New(rand.NewPCG(uint64(mib), 2))
	for i := n - 1; i > 0; i-- {
		j := r.IntN(i)
		perm[i], perm[j] = perm[j], perm[i]
	}
	for i := range perm {
		nodes[perm[i]].next = perm[(i+1)%n]
	}
	return func(i int, stop *stopper) float64 {
		var ops float64
		const per = 1 << 14
		at := uint32((n / workers) * i)
		for !stop.done() {
			for range per {
				at = nodes[at].next
			}
			ops += per
		}
		sink.Add(uint64(at))
		return ops
	}, nil, nil
}

func prepareSyscall(p Params, workers int) (func(int, *stopper) float64, func(), error) {
	kind, err := p.word("kind", "getppid", "pipe", "openclose", "stat")
	if err != nil {
		return nil, nil, err
	}
	if workers == 0 {
		return nil, nil, nil
	}
	const per = 256
	switch kind {
	case "getppid":
		return func(i int, stop *stopper) float64 {
			var ops float64
			for !stop.done() {
				for range per {
					syscall.RawSyscall(syscall.SYS_GETPPID, 0, 0, 0)
				}
				ops += per
			}
			return ops
		}, nil, nil
	case "pipe":
		pipes := make([][2]int, workers)
		for i := range pipes {
			if err := syscall.Pipe2(pipes[i][:], syscall.O_CLOEXEC); err != nil {
				return nil, nil, fmt.Errorf("pipe: %w", err)
			}
		}
		cleanup := func() {
			for _, p := range pipes {
				syscall.Close(p[0])
				syscall.Close(p[1])
			}
		}
		return func(i int, stop *stopper) float64 {
			var ops float64
			b := []byte{1}
			for !stop.done() {
				for range per {
					syscall.Write(pipes[i][1], b)
					syscall.Read(pipes[i][0], b)
				}
				ops += 2 * per
			}
			return ops
		}, cleanup, nil
	case "openclose":
		const name = "/etc/passwd"
		if _, err := os.Stat(name); err != nil {
			return nil, nil, err
		}
		return func(i int, stop *stopper) float64 {
			var ops float64
			buf := make([]byte, 4096)
			for !stop.done() {
				for range per / 4 {
					fd, err := syscall.Open(name, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
					if err != nil {
						continue
					}
					syscall.Read(fd, buf)
					syscall.Close(fd)
				}
				ops += 3 * (per / 4)
			}
			return ops
		}, nil, nil
	default: // stat
		const name = "/etc/passwd"
		return func(i int, stop *stopper) float64 {
			var ops float64
			var st syscall.Stat_t
			for !stop.done() {
				for range per {
					syscall.Stat(name, &st)
				}
				ops += per
			}
			return ops
		}, nil, nil
	}
}

func prepareFileIO(p Params, workers int) (func(int, *stopper) float64, func(), error) {
	where, err := p.word("dir", "root", "tmp")
	if err != nil {
		return nil, nil, err
	}
	mib, err := p.int("mib", 1, 4096)
	if err != nil {
		return nil, nil, err
	}
	block, err := p.int("block", 512, 16<<20)
	if err != nil {
		return nil, nil, err
	}
	fsync, err := p.word("fsync", "0", "1")
	if err != nil {
		return nil, nil, err
	}
	if workers == 0 {
		return nil, nil, nil
	}
	base := "/root"
	if where == "tmp" {
		base = os.TempDir()
	}
	dir, err := os.MkdirTemp(base, "zennet-bench-")
	if err != nil {
		return nil, nil, err
	}
	size := max(block, mib<<20/int64(workers))
	buf := randomBytes(7, int(block))
	return func(i int, stop *stopper) float64 {
			var ops float64
			name := filepath.Join(dir, strconv.Itoa(i))
			rbuf := make([]byte, block)
			for !stop.done() {
				f, err := os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o600)
				if err != nil {
					return ops
				}
				for off := int64(0); off < size && !stop.done(); off += block {
					n, _ := f.Write(buf)
					ops += float64(n)
				}
				if fsync == "1" && !stop.done() {
					f.Sync()
				}
				if _, err := f.Seek(0, io.SeekStart); err == nil {
					for !stop.done() {
						n, err := f.Read(rbuf)
						ops += float64(n)
						if err != nil {
							break
						}
					}
				}
				f.Close()
				os.Remove(name)
			}
			return ops
		}, func() {
			os.RemoveAll(dir)
		}, nil
}

func prepareSpawn(p Params, workers int) (func(int, *stopper) float64, func(), error) {
	prog, err := p.word("prog", "true", "sh")
	if err != nil {
		return nil, nil, err
	}
	if workers == 0 {
		return nil, nil, nil
	}
	argv := []string{"/bin/true"}
	if prog == "sh" {
		argv = []string{"/bin/sh", "-c", "exit 0"}
	}
	if _, err := os.Stat(argv[0]); err != nil {
		return nil, nil, err
	}
	attr := &os.ProcAttr{Env: []string{"PATH=/usr/bin:/bin"}}
	return func(i int, stop *stopper) float64 {
		var ops float64
		for !stop.done() {
			proc, err := os.StartProcess(argv[0], argv, attr)
			if err != nil {
				return ops
			}
			if _, err := proc.Wait(); err == nil {
				ops++
			}
		}
		return ops
	}, nil, nil
}

func prepareTCP(p Params, workers int) (func(int, *stopper) float64, func(), error) {
	mode, err := p.word("mode", "stream", "pingpong")
	if err != nil {
		return nil, nil, err
	}
	msg, err := p.int("msg", 1, 16<<20)
	if err != nil {
		return nil, nil, err
	}
	if workers == 0 {
		return nil, nil, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("listen on loopback: %w", err)
	}
	var served sync.WaitGroup
	serve := func(c net.Conn) {
		defer served.Done()
		defer c.Close()
		if mode == "stream" {
			io.Copy(io.Discard, c)
			return
		}
		b := make([]byte, msg)
		for {
			if _, err := io.ReadFull(c, b); err != nil {
				return
			}
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	}
	clients := make([]net.Conn, workers)
	for i := range clients {
		c, err := net.Dial("tcp", l.Addr().String())
		if err == nil {
			var s net.Conn
			if s, err = l.Accept(); err == nil {
				served.Add(1)
				go serve(s)
			}
		}
		if err != nil {
			for _, c := range clients[:i] {
				c.Close()
			}
			l.Close()
			return nil, nil, fmt.Errorf("connect over loopback: %w", err)
		}
		clients[i] = c
	}
	cleanup := func() {
		for _, c := range clients {
			c.Close()
		}
		l.Close()
		served.Wait()
	}
	return func(i int, stop *stopper) float64 {
		var ops float64
		c := clients[i]
		b := randomBytes(uint64(i), int(msg))
		for !stop.done() {
			if _, err := c.Write(b); err != nil {
				return ops
			}
			if mode == "pingpong" {
				if _, err := io.ReadFull(c, b); err != nil {
					return ops
				}
				ops += float64(msg)
			}
			ops += float64(msg)
		}
		return ops
	}, cleanup, nil
}

func prepareCompress(p Params, workers int) (func(int, *stopper) float64, func(), error) {
	mode, err := p.word("mode", "deflate", "inflate")
	if err != nil {
		return nil, nil, err
	}
	level, err := p.int("level", 1, 9)
	if err != nil {
		return nil, nil, err
	}
	chunk, err := p.int("chunk", 1024, 64<<20)
	if err != nil {
		return nil, nil, err
	}
	kind, err := p.word("data", "text", "mixed", "random")
	if err != nil {
		return nil, nil, err
	}
	if workers == 0 {
		return nil, nil, nil
	}
	data := compressible(kind, int(chunk))
	var packed []byte
	if mode == "inflate" {
		var b bytes.Buffer
		w, _ := flate.NewWriter(&b, int(level))
		w.Write(data)
		w.Close()
		packed = b.Bytes()
	}
	return func(i int, stop *stopper) float64 {
		var ops float64
		if mode == "deflate" {
			w, _ := flate.NewWriter(io.Discard, int(level))
			for !stop.done() {
				w.Reset(io.Discard)
				w.Write(data)
				w.Close()
				ops += float64(len(data))
			}
			return ops
		}
		br := bytes.NewReader(packed)
		r := flate.NewReader(br)
		for !stop.done() {
			br.Reset(packed)
			r.(flate.Resetter).Reset(br, nil)
			n, _ := io.Copy(io.Discard, r)
			ops += float64(n)
		}
		return ops
	}, nil, nil
}

// compressible returns n bytes of text-like, mixed or random data.
func compressible(kind string, n int) []byte {
	if kind == "random" {
		return randomBytes(3, n)
	}
	words := []string{"the ", "of ", "sandbox ", "lease ", "counter ", "renter ", "provider ", "price ",
		"benchmark ", "a ", "and ", "gvisor ", "sentry ", "memory ", "to ", "in ", "is ", "rate ", "\n"}
	r := rand.New(rand.NewPCG(4, 4))
	b := make([]byte, 0, n+16)
	for len(b) < n {
		if kind == "mixed" && (len(b)/4096)%2 == 1 {
			b = append(b, byte(r.Uint32()))
			continue
		}
		b = append(b, words[r.IntN(len(words))]...)
	}
	return b[:n]
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 5))
	var w [8]byte
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(w[:], r.Uint64())
		copy(b[i:], w[:])
	}
	return b
}
