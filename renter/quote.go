package renter

import (
	"cmp"
	"context"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/market"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sshgate"
	"github.com/zennet/zennet/terms"
)

// ProviderQuote is what one provider offered for a demand in a dry run,
// and what renting would take of it.
type ProviderQuote struct {
	Address     string `json:"address"`
	Fingerprint string `json:"fingerprint,omitempty"`
	// Offered is how many hosts it offered; Hosts how many renting would
	// take.
	Offered int `json:"offered"`
	Hosts   int `json:"hosts"`
	// PricePerWorkMsat is its price per reference CPU-second of work (0:
	// flat rates); Score its hosts' speed relative to the reference.
	PricePerWorkMsat float64 `json:"price_per_work_msat"`
	Score            float64 `json:"score"`
	Method           string  `json:"method,omitempty"`
	// HostMsatPerHour is what one of its hosts costs an hour at its
	// offered rates, busy (HourOfUse).
	HostMsatPerHour float64 `json:"host_msat_per_hour"`
	// Calibration is the digest of the calibration set its rates were
	// fitted to, CalibrationSigner the fingerprint of the key that signed
	// it (the benchmarker's: the provider's own, or a published set's).
	Calibration       string `json:"calibration,omitempty"`
	CalibrationSigner string `json:"calibration_signer,omitempty"`
	// Note says why it was chosen or not, or what went wrong.
	Note string `json:"note,omitempty"`
}

// Estimate is a dry run's result: what renting would take, from whom, and
// what it would cost an hour.
type Estimate struct {
	// Count is the hosts asked for, Hosts those the offers cover.
	Count int `json:"count"`
	Hosts int `json:"hosts"`
	// MsatPerHour is the hosts' cost an hour at the offered rates, busy.
	MsatPerHour float64         `json:"msat_per_hour"`
	Providers   []ProviderQuote `json:"providers"`
}

// HourOfUse is the usage an estimate prices: one hour of a host with its
// every CPU busy in user space and its whole memory in use. Disk and
// network I/O, page faults and context switches are not counted: a job
// that does much of them costs more.
func HourOfUse(l proto.Limits) meter.Vector {
	var v meter.Vector
	cpu := uint64(l.CPUs * float64(time.Hour))
	v[meter.CPU], v[meter.CPUUser], v[meter.ProcCPU] = cpu, cpu, cpu
	v[meter.MemoryTime] = uint64(l.MemoryBytes>>20) * uint64(time.Hour/time.Millisecond)
	v[meter.MemoryPeak] = uint64(l.MemoryBytes)
	return v
}

// calibrated fills q's calibration fields from set (nil: none).
func (q *ProviderQuote) calibrated(set *bench.Set) {
	if set == nil {
		return
	}
	q.Calibration, _ = set.Digest()
	if set.Signer != nil {
		q.CalibrationSigner = gossh.FingerprintSHA256(set.Signer)
	}
}

// hourly is what one host of limits costs an hour at rates, busy.
func hourly(rates pay.Rates, l proto.Limits) float64 {
	f, _ := new(big.Rat).Set(rates.Cost(HourOfUse(l))).Float64()
	return f
}

// EstimateRent asks the providers cfg names (or, without any, the
// market's) for cfg's hosts as renting would, chooses as renting would,
// and accepts nothing: no host is started, nothing is paid, and the
// connections are closed. Each offer is checked as renting checks it
// (terms.Accept, --max-price).
func EstimateRent(ctx context.Context, cfg Config) (Estimate, error) {
	o := &cfg
	if o.Events == nil {
		o.Events = func(Event) {}
	}
	r := &Rental{cfg: o}
	defer func() {
		if r.dialer != nil {
			r.dialer.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(o.Timeout, time.Minute))
	defer cancel()
	est := Estimate{Count: o.asked(), Providers: []ProviderQuote{}}
	if len(o.Providers) > 0 {
		err := r.quoteNamed(ctx, &est)
		return est, err
	}
	dir, notes, serr := KnownProviders(ctx, o.ConfigDir, o.Seeds, o.Signer, o.PowBits)
	for _, n := range notes {
		r.notice("%s", n)
	}
	if dir.Len() == 0 && serr != nil {
		return est, causeError{msg: fmt.Sprintf("no provider reachable: %v", serr), cause: serr}
	}
	if dir.Len() == 0 {
		return est, ErrNoProvider
	}
	r.progress("asking %d providers for %d hosts ...", dir.Len(), est.Count)
	qs := r.askMarket(ctx, dir, est.Count, nil)
	r.progress("")
	cands := make([]market.Candidate, len(qs))
	for i, q := range qs {
		cands[i] = q.cand
		if q.c != nil {
			q.c.Close()
		}
	}
	_, explain := market.Choose(cands, est.Count, o.rules())
	for i, q := range qs {
		pq := ProviderQuote{Address: q.cand.Address, Fingerprint: q.cand.Provider, Offered: q.cand.Offered, PricePerWorkMsat: q.cand.PricePerWorkMsat,
			Score: q.cand.Score, Method: q.method, Note: explain[i].Reason()}
		if q.c != nil {
			pq.HostMsatPerHour = hourly(q.rates, q.offer.Limits)
			pq.calibrated(q.calib)
		}
		if explain[i].Chosen {
			pq.Hosts = explain[i].Count
		}
		est.add(pq)
	}
	return est, nil
}

func (e *Estimate) add(q ProviderQuote) {
	e.Hosts += q.Hosts
	e.MsatPerHour += float64(q.Hosts) * q.HostMsatPerHour
	e.Providers = append(e.Providers, q)
}

// quoteNamed asks the named providers in order, each for what the ones
// before it do not offer.
func (r *Rental) quoteNamed(ctx context.Context, est *Estimate) error {
	o := r.cfg
	hostKeys, err := providerHostKeys(o.ConfigDir, o.ProviderKeys, func(host, fp string) {
		r.notice("provider %s: first use of its host key %s, pinned from now on (check it with its operator, or pass --provider-key)", host, fp)
	})
	if err != nil {
		return err
	}
	var unreachable []string
	for _, addr := range o.Providers {
		want := est.Count - est.Hosts
		pq := ProviderQuote{Address: addr}
		if want == 0 {
			pq.Note = "not needed: the providers before it cover every host"
			est.add(pq)
			continue
		}
		r.progress("asking %s for %d hosts ...", addr, want)
		var fp string
		c, err := sshgate.Dial(ctx, addr, sshgate.ClientConfig{Signer: o.Signer, Dial: r.dial,
			HostKeyCallback: func(host string, remote net.Addr, key gossh.PublicKey) error {
				fp = gossh.FingerprintSHA256(key)
				return hostKeys(host, remote, key)
			}})
		if err != nil {
			pq.Note = err.Error()
			unreachable = append(unreachable, fmt.Sprintf("provider %s: %v", addr, strings.TrimPrefix(err.Error(), sshgate.ErrUnreachable.Error()+": ")))
			est.add(pq)
			continue
		}
		pq.Fingerprint = fp
		offer, err := c.Offer(ctx, o.demand(want))
		c.Close()
		if err != nil {
			pq.Note = err.Error()
			est.add(pq)
			continue
		}
		pq.Offered, pq.PricePerWorkMsat = offer.Count, offer.Payment.PricePerWorkMsat
		method, rates, calib, _, err := o.accept(offer, c.HostKey)
		switch {
		case err != nil:
			pq.Note = "refused: " + err.Error()
		case o.MaxPrice > 0 && offer.Payment.PricePerWorkMsat > o.MaxPrice:
			pq.Note = fmt.Sprintf("price %.1f > max %.1f", offer.Payment.PricePerWorkMsat, o.MaxPrice)
		case o.MaxPrice > 0 && offer.Payment.PricePerWorkMsat == 0:
			pq.Note = fmt.Sprintf("flat rates, no price per unit of work to hold to --max-price %.1f", o.MaxPrice)
		default:
			pq.Method, pq.Score, pq.Hosts = method, terms.RelativeScore(calib), min(offer.Count, want)
			pq.HostMsatPerHour = hourly(rates, offer.Limits)
			pq.calibrated(calib)
			pq.Note = fmt.Sprintf("chosen: %d hosts", pq.Hosts)
		}
		est.add(pq)
	}
	r.progress("")
	if len(unreachable) == len(o.Providers) {
		return causeError{msg: "no provider reachable: " + strings.Join(unreachable, "; "), cause: sshgate.ErrUnreachable}
	}
	return nil
}
