package control

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func scrape(t *testing.T, url string) (map[string]*dto.MetricFamily, int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, string(b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("parse the exposition: %v\n%s", err, b)
	}
	return mfs, resp.StatusCode, string(b)
}

// value returns the value of name's sample with the given labels.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	mf, ok := mfs[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range mf.Metric {
		got := map[string]string{}
		for _, lp := range m.Label {
			got[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if got[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		}
	}
	t.Fatalf("no sample of %s with %v", name, labels)
	return 0
}

func TestMetrics(t *testing.T) {
	f := newFake()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := ServeMetrics(ctx, "127.0.0.1:0", f)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	url := "http://" + srv.Addr().String() + MetricsPath
	mfs, code, body := scrape(t, url)
	if code != http.StatusOK {
		t.Fatalf("scrape: %d %s", code, body)
	}
	types := map[string]dto.MetricType{
		"zennet_provider_leases":                    dto.MetricType_GAUGE,
		"zennet_provider_capacity_memory_bytes":     dto.MetricType_GAUGE,
		"zennet_lease_cpu_seconds_total":            dto.MetricType_COUNTER,
		"zennet_lease_network_receive_bytes_total":  dto.MetricType_COUNTER,
		"zennet_lease_network_transmit_bytes_total": dto.MetricType_COUNTER,
		"zennet_provider_earned_msat_total":         dto.MetricType_COUNTER,
		"zennet_provider_payment_failures_total":    dto.MetricType_COUNTER,
		"zennet_lease_memory_bytes":                 dto.MetricType_GAUGE,
	}
	for name, typ := range types {
		if mf, ok := mfs[name]; !ok || mf.GetType() != typ {
			t.Errorf("%s: want a %v", name, typ)
		}
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"zennet_provider_up", nil, 1},
		{"zennet_provider_info", []string{"fingerprint", "SHA256:provider", "address", "127.0.0.1:2222", "version", "test"}, 1},
		{"zennet_provider_leases", []string{"state", "running"}, 1},
		{"zennet_provider_leases", []string{"state", "paused-unpaid"}, 1},
		{"zennet_provider_leases", []string{"state", "ended"}, 0},
		{"zennet_provider_capacity_leases", nil, 8},
		{"zennet_provider_capacity_memory_bytes", nil, 8 << 30},
		{"zennet_provider_capacity_cpus", nil, 8},
		{"zennet_provider_capacity_disk_bytes", nil, 100 << 30},
		{"zennet_provider_used_cpus", nil, 1.5},
		{"zennet_provider_draining", nil, 0},
		{"zennet_provider_start_time_seconds", nil, float64(t0.Unix() - 3600)},
		{"zennet_lease_cpu_seconds_total", []string{"lease", id1}, 12.5},
		{"zennet_lease_memory_bytes", []string{"lease", id1}, 300 << 20},
		{"zennet_lease_network_receive_bytes_total", []string{"lease", id1}, 1000},
		{"zennet_lease_network_transmit_bytes_total", []string{"lease", id1}, 2000},
		{"zennet_lease_limit_cpus", []string{"lease", id2}, 0.5},
		{"zennet_lease_earned_msat_total", []string{"lease", id1}, 4000},
		{"zennet_lease_due_msat", []string{"lease", id1}, 1000},
		{"zennet_lease_info", []string{"lease", id2, "renter", "SHA256:renterB", "state", "paused-unpaid", "method", "lightning"}, 1},
		{"zennet_provider_earned_msat_total", nil, 4000},
		{"zennet_provider_earned_today_msat", nil, 9000},
		{"zennet_provider_payment_failures_total", nil, 3},
	} {
		if got := value(t, mfs, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	// Each scrape reads a fresh status.
	f.Drain(ctx, true)
	mfs, _, _ = scrape(t, url)
	if got := value(t, mfs, "zennet_provider_draining"); got != 1 {
		t.Errorf("draining = %v after Drain(true)", got)
	}

	// A provider that does not answer fails the scrape.
	f.mu.Lock()
	f.failWith = errors.New("stuck")
	f.mu.Unlock()
	if _, code, body := scrape(t, url); code != http.StatusInternalServerError || !strings.Contains(body, "stuck") {
		t.Errorf("scrape of a failing provider: %d %s", code, body)
	}

	cancel()
	<-srv.done
	srv.Close()
	if _, err := http.Get(url); err == nil {
		t.Error("metrics still served after the context ended")
	}
}

func TestMetricsListenError(t *testing.T) {
	if _, err := ServeMetrics(context.Background(), "127.0.0.1:notaport", newFake()); err == nil {
		t.Fatal("want an error")
	}
}
