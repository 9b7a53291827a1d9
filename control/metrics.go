package control

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsPath is where ServeMetrics serves the metrics.
const MetricsPath = "/metrics"

// scrapeTimeout bounds one Status call of a scrape.
const scrapeTimeout = 10 * time.Second

// ServeMetrics serves Prometheus metrics of p at http://addr/metrics until
// ctx ends or the server is closed. Every scrape reads p.Status once.
func ServeMetrics(ctx context.Context, addr string, p Provider) (*Server, error) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(NewCollector(p)); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(MetricsPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "zennet provider metrics: %s\n", MetricsPath)
	})
	return start(ctx, l, l.Addr(), mux, "", 0), nil
}

// Collector exports a Provider's Status as Prometheus metrics.
type Collector struct {
	p Provider

	info, started, draining, interval                           *prometheus.Desc
	leases                                                      *prometheus.Desc
	capLeases, capMemory, capCPUs, capDisk                      *prometheus.Desc
	usedLeases, usedMemory, usedCPUs, usedDisk                  *prometheus.Desc
	earned, earnedToday, payments, failures                     *prometheus.Desc
	leaseInfo, leaseStarted, leaseMemLimit, leaseCPULimit       *prometheus.Desc
	leaseDiskLimit, leaseCPU, leaseMem, leaseNetIn, leaseNetOut *prometheus.Desc
	leaseBilled, leaseEarned, leaseDue, leaseLastReport, up     *prometheus.Desc
}

// NewCollector returns a collector that reads p.Status on each scrape.
func NewCollector(p Provider) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	lease := []string{"lease"}
	return &Collector{
		p:        p,
		info:     d("zennet_provider_info", "The provider's identity; always 1.", "fingerprint", "address", "version"),
		started:  d("zennet_provider_start_time_seconds", "When the provider started, in seconds since the Unix epoch."),
		draining: d("zennet_provider_draining", "1 while the provider takes no new leases."),
		interval: d("zennet_provider_metering_interval_seconds", "The default metering interval."),
		leases:   d("zennet_provider_leases", "Leases by state.", "state"),

		capLeases: d("zennet_provider_capacity_leases", "Most leases at once."),
		capMemory: d("zennet_provider_capacity_memory_bytes", "Memory sold in all."),
		capCPUs:   d("zennet_provider_capacity_cpus", "CPU quota sold in all, in cores."),
		capDisk:   d("zennet_provider_capacity_disk_bytes", "Disk sold in all."),

		usedLeases: d("zennet_provider_used_leases", "Leases held now."),
		usedMemory: d("zennet_provider_used_memory_bytes", "Memory held by leases now."),
		usedCPUs:   d("zennet_provider_used_cpus", "CPU quota held by leases now, in cores."),
		usedDisk:   d("zennet_provider_used_disk_bytes", "Disk held by leases now."),

		earned:      d("zennet_provider_earned_msat_total", "Millisatoshis earned since the provider started."),
		earnedToday: d("zennet_provider_earned_today_msat", "Millisatoshis earned since local midnight."),
		payments:    d("zennet_provider_recent_payments", "Payments in the provider's recent payment list."),
		failures:    d("zennet_provider_payment_failures_total", "Payments that failed or were refused since the provider started."),

		leaseInfo:       d("zennet_lease_info", "A lease's renter, state and payment method; always 1.", "lease", "renter", "state", "method"),
		leaseStarted:    d("zennet_lease_start_time_seconds", "When the lease started, in seconds since the Unix epoch.", lease...),
		leaseMemLimit:   d("zennet_lease_limit_memory_bytes", "The lease's memory limit.", lease...),
		leaseCPULimit:   d("zennet_lease_limit_cpus", "The lease's CPU quota, in cores.", lease...),
		leaseDiskLimit:  d("zennet_lease_limit_disk_bytes", "The lease's disk limit.", lease...),
		leaseCPU:        d("zennet_lease_cpu_seconds_total", "CPU time the lease's sandbox used.", lease...),
		leaseMem:        d("zennet_lease_memory_bytes", "The lease's latest memory use.", lease...),
		leaseNetIn:      d("zennet_lease_network_receive_bytes_total", "Bytes the lease's sandbox received.", lease...),
		leaseNetOut:     d("zennet_lease_network_transmit_bytes_total", "Bytes the lease's sandbox sent.", lease...),
		leaseBilled:     d("zennet_lease_billed_msat_total", "Millisatoshis billed for the lease.", lease...),
		leaseEarned:     d("zennet_lease_earned_msat_total", "Millisatoshis paid for the lease.", lease...),
		leaseDue:        d("zennet_lease_due_msat", "Millisatoshis billed for the lease and not yet paid.", lease...),
		leaseLastReport: d("zennet_lease_last_report_time_seconds", "When the lease's latest usage report was made, in seconds since the Unix epoch.", lease...),
		up:              d("zennet_provider_up", "1 when the provider answered this scrape's status request."),
	}
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.info, c.started, c.draining, c.interval, c.leases,
		c.capLeases, c.capMemory, c.capCPUs, c.capDisk, c.usedLeases, c.usedMemory, c.usedCPUs, c.usedDisk,
		c.earned, c.earnedToday, c.payments, c.failures,
		c.leaseInfo, c.leaseStarted, c.leaseMemLimit, c.leaseCPULimit, c.leaseDiskLimit, c.leaseCPU, c.leaseMem,
		c.leaseNetIn, c.leaseNetOut, c.leaseBilled, c.leaseEarned, c.leaseDue, c.leaseLastReport, c.up} {
		ch <- d
	}
}

// Collect reads the provider's status and sends the metrics. If the
// provider does not answer, the scrape fails.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	st, err := c.p.Status(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.up, fmt.Errorf("provider status: %w", err))
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	unix := func(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	gauge(c.up, 1)
	gauge(c.info, 1, st.Identity.Fingerprint, st.Identity.Address, st.Identity.Version)
	if !st.Identity.Started.IsZero() {
		gauge(c.started, unix(st.Identity.Started))
	}
	gauge(c.draining, b2f(st.Draining))
	gauge(c.interval, float64(st.IntervalS))
	byState := map[LeaseState]int{}
	for _, l := range st.Leases {
		byState[l.State]++
	}
	for _, s := range States {
		gauge(c.leases, float64(byState[s]), string(s))
		delete(byState, s)
	}
	for s, n := range byState { // states this version does not know
		gauge(c.leases, float64(n), string(s))
	}
	gauge(c.capLeases, float64(st.Capacity.Leases))
	gauge(c.capMemory, float64(st.Capacity.MemoryBytes))
	gauge(c.capCPUs, st.Capacity.CPUs)
	gauge(c.capDisk, float64(st.Capacity.DiskBytes))
	gauge(c.usedLeases, float64(st.Used.Leases))
	gauge(c.usedMemory, float64(st.Used.MemoryBytes))
	gauge(c.usedCPUs, st.Used.CPUs)
	gauge(c.usedDisk, float64(st.Used.DiskBytes))
	counter(c.earned, float64(st.Earnings.SessionMsat))
	gauge(c.earnedToday, float64(st.Earnings.TodayMsat))
	gauge(c.payments, float64(len(st.Payments)))
	counter(c.failures, float64(st.PaymentFailures))
	seen := map[string]bool{}
	for _, l := range st.Leases {
		if seen[l.ID] { // a duplicate would fail the whole scrape
			continue
		}
		seen[l.ID] = true
		gauge(c.leaseInfo, 1, l.ID, l.Renter, string(l.State), l.Method)
		if !l.Started.IsZero() {
			gauge(c.leaseStarted, unix(l.Started), l.ID)
		}
		gauge(c.leaseMemLimit, float64(l.Limits.MemoryBytes), l.ID)
		gauge(c.leaseCPULimit, l.Limits.CPUs, l.ID)
		gauge(c.leaseDiskLimit, float64(l.Limits.DiskBytes), l.ID)
		counter(c.leaseCPU, float64(l.CPUNs)/1e9, l.ID)
		gauge(c.leaseMem, float64(l.MemoryBytes), l.ID)
		counter(c.leaseNetIn, float64(l.NetInBytes), l.ID)
		counter(c.leaseNetOut, float64(l.NetOutBytes), l.ID)
		counter(c.leaseBilled, float64(l.BilledMsat), l.ID)
		counter(c.leaseEarned, float64(l.EarnedMsat), l.ID)
		gauge(c.leaseDue, float64(l.DueMsat), l.ID)
		if !l.LastReport.IsZero() {
			gauge(c.leaseLastReport, unix(l.LastReport), l.ID)
		}
	}
}
