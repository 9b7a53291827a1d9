package netsandbox

import (
	"context"
	"runtime"
	"testing"
)

// BenchmarkCreate measures setting up a network (no sandbox) and what a
// live network costs: heap and goroutines.
func BenchmarkCreate(b *testing.B) {
	if testing.Short() {
		b.Skip("creates network namespaces")
	}
	m, err := New(Config{Services: []Service{{Name: "web", Target: "127.0.0.1:8080"}}})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	nets := make([]*Network, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n, err := m.Create(context.Background(), "bench")
		if err != nil {
			b.Fatal(err)
		}
		nets = append(nets, n)
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/float64(b.N), "heap-B/net")
	b.ReportMetric(float64(runtime.NumGoroutine()-g0)/float64(b.N), "goroutines/net")
	if err := m.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkClose measures closing a network: mostly the kernel removing
// the tap.
func BenchmarkClose(b *testing.B) {
	if testing.Short() {
		b.Skip("creates network namespaces")
	}
	m, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		n, err := m.Create(context.Background(), "bench")
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := n.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
