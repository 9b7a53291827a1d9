package market

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Errors a Candidate's Err may wrap to say why a provider gave nothing;
// any other error reads as unreachable.
var (
	// ErrNoCapacity: the provider answered that it has no capacity
	// (proto.ErrCapacity). Offered == 0 with no error means the same.
	ErrNoCapacity = errors.New("no capacity")
	// ErrRefused: the provider refused the demand (a protocol error
	// answer, a version mismatch); the wrapping message says how.
	ErrRefused = errors.New("refused")
)

// Candidate is one provider the renter asked, and what came of it.
type Candidate struct {
	// Provider is the SHA256 fingerprint of the provider's host key, the
	// key of the renter's reputation book.
	Provider string
	// Address is where it was asked.
	Address string
	// Announcement is what the provider announced, if it was found in
	// the market (nil for a --provider given by hand).
	Announcement *Announcement
	// Offered is how many hosts the provider offered (0: none).
	Offered int
	// PricePerWorkMsat is the offer's price per reference CPU-second of work
	// (0: flat rates); Score its calibration's relative work (0:
	// uncalibrated). Both are the offer's, as the renter checked them, not
	// the announcement's.
	PricePerWorkMsat float64
	Score            float64
	// ListPricePerWorkMsat is the provider's asking price when
	// PricePerWorkMsat is what it accepted of the renter's counter-offer
	// (0: no counter-offer, or it was not needed).
	ListPricePerWorkMsat float64
	// Countered is the renter's counter-offer (0: none made): the price per
	// work it bid when the provider asked more than it would pay.
	Countered float64
	// Methods are the payment methods of the offer (none means embedded).
	Methods []string
	// Err is why the provider gave no offer: unreachable, refused (wrap
	// ErrRefused), no capacity (wrap ErrNoCapacity).
	Err error
	// CalibrationSigner says who signed the offer's calibration set ("its
	// own key" or a benchmarker's fingerprint; "" without one).
	CalibrationSigner string
	// SpotCheckFailed: a spot-check of its calibration failed.
	SpotCheckFailed bool
	// Reputation is the renter's record of the provider.
	Reputation Record
}

// CandidateFrom fills a Candidate from an announcement, before asking the
// provider: the caller sets Offered, Err, SpotCheckFailed and Reputation,
// and replaces price, score and methods with the offer's.
func CandidateFrom(a *Announcement) Candidate {
	return Candidate{Provider: a.Fingerprint(), Address: a.Address, Announcement: a,
		PricePerWorkMsat: a.PricePerWorkMsat, Score: a.Score, Methods: slices.Clone(a.Methods)}
}

// Rules are the renter's rules of choice. Zero values are the defaults.
type Rules struct {
	// MaxPricePerWork is the most msat per reference CPU-second of work the
	// renter pays; 0 means no limit. With a limit, flat-rate providers
	// (no price per work to compare) are not chosen.
	MaxPricePerWork float64
	// MinScore is the least relative work per second; 0 means any, and
	// uncalibrated providers too.
	MinScore float64
	// Methods are the payment methods the renter can pay by; a provider
	// must accept one of them. None means embedded.
	Methods []string
	// MinReputation is the least reputation score (Record.Score); 0 means
	// any. A provider never met scores 0.5.
	MinReputation float64
	// MaxShare is the most of the N hosts one provider gets, as a fraction
	// of N rounded up, strictly. 0 means the automatic risk spreading:
	// half of N rounded up when more than one provider can give hosts
	// (all of them when one can), and then, when the others cannot make
	// up the rest, more from the best ones rather than fewer hosts.
	MaxShare float64
}

// DefaultShare is the automatic MaxShare when several providers qualify.
const DefaultShare = 0.5

// Pick is hosts to take from one candidate.
type Pick struct {
	// Index is the candidate's index in Choose's argument.
	Index    int
	Provider string
	Address  string
	Count    int
}

// Explanation says what Choose did with one candidate and why.
type Explanation struct {
	// Index is the candidate's index in Choose's argument.
	Index    int
	Provider string
	Address  string
	// Chosen is whether hosts are taken from it, Count how many.
	Chosen bool
	Count  int
	// Eligible is whether it passed the rules (it may still be unchosen,
	// when better offers cover the N hosts).
	Eligible bool
	// EffectivePrice is the price per work the ordering used: the price
	// divided by 0.5 + 0.5 × reputation score (0 for flat rates).
	EffectivePrice float64
	// Reasons are sentences: why it was not eligible (every rule it
	// fails), or "chosen: …", or why it was not needed.
	Reasons []string
}

// Reason is the explanation's sentences joined by "; ".
func (e Explanation) Reason() string { return strings.Join(e.Reasons, "; ") }

// Choose picks n hosts among cands by rules. Every candidate gets an
// Explanation, in cands' order; picks come best first. A candidate is
// eligible when it answered (Err nil), offered hosts, passed its
// calibration spot-check, and meets every rule. Eligible candidates are
// ordered: those with a price per work first, by effective price (price /
// (0.5 + 0.5 × reputation score): a provider of reputation 1 pays no
// penalty, one never met 1.33×, one of reputation 0 2×); flat-rate ones
// after, by reputation; ties by reputation, score, fingerprint, address.
// Hosts are then taken in that order, at most MaxShare of n per provider
// (see Rules.MaxShare). When fewer than n hosts can be had, Choose returns
// what it can; Total says how many and Summarize why.
func Choose(cands []Candidate, n int, rules Rules) (picks []Pick, explain []Explanation) {
	methods := rules.Methods
	if len(methods) == 0 {
		methods = []string{MethodEmbedded}
	}
	explain = make([]Explanation, len(cands))
	var eligible []int
	providers := map[string]bool{}
	for i := range cands {
		c := &cands[i]
		e := &explain[i]
		e.Index, e.Provider, e.Address = i, c.Provider, c.Address
		e.Reasons = ineligible(c, rules, methods)
		if len(e.Reasons) == 0 {
			e.Eligible = true
			e.EffectivePrice = effectivePrice(c)
			eligible = append(eligible, i)
			providers[c.Provider] = true
		}
	}
	slices.SortStableFunc(eligible, func(i, j int) int { return compareCandidates(&cands[i], &cands[j]) })

	// Risk spreading.
	share, soft := rules.MaxShare, false
	if !(share > 0) {
		share, soft = DefaultShare, true
		if len(providers) <= 1 {
			share = 1
		}
	}
	limit := int(math.Ceil(math.Min(share, 1) * float64(n)))
	if limit < 1 {
		limit = 1
	}
	count := make([]int, len(cands))
	perProvider := map[string]int{}
	capped := make([]bool, len(cands))
	remaining := max(n, 0)
	take := func(i, k int) {
		count[i] += k
		perProvider[cands[i].Provider] += k
		remaining -= k
	}
	for _, i := range eligible {
		if remaining == 0 {
			break
		}
		want := min(cands[i].Offered, remaining)
		k := min(want, limit-perProvider[cands[i].Provider])
		if k < want {
			capped[i] = true
		}
		if k > 0 {
			take(i, k)
		}
	}
	if soft {
		// No host left unrented because of the spreading: the best
		// offers give the rest.
		for _, i := range eligible {
			if remaining == 0 {
				break
			}
			if k := min(cands[i].Offered-count[i], remaining); k > 0 {
				take(i, k)
			}
		}
	}

	for _, i := range eligible {
		c, e := &cands[i], &explain[i]
		e.Count = count[i]
		e.Chosen = count[i] > 0
		var s string
		switch {
		case e.Chosen && c.PricePerWorkMsat > 0:
			s = fmt.Sprintf("chosen: %s at %s msat per unit of work", hosts(count[i]), num(c.PricePerWorkMsat))
		case e.Chosen:
			s = fmt.Sprintf("chosen: %s at flat rates", hosts(count[i]))
		case n <= 0:
			s = "not needed: no hosts asked"
		case capped[i]:
			s = fmt.Sprintf("not needed: this provider already has its share (at most %d of %s)", limit, hosts(n))
		default:
			s = fmt.Sprintf("not needed: better offers cover all %s", hosts(n))
		}
		if e.Chosen && c.ListPricePerWorkMsat > c.PricePerWorkMsat && c.PricePerWorkMsat > 0 {
			s += fmt.Sprintf(" (came down from %s on a counter-offer of %s)", num(c.ListPricePerWorkMsat), num(c.Countered))
		}
		if e.Chosen && capped[i] && count[i] < min(c.Offered, n) {
			if count[i] <= limit {
				s += fmt.Sprintf(" (of %d offered: at most %d of %d on one provider)", c.Offered, limit, n)
			} else {
				s += fmt.Sprintf(" (of %d offered: more than %d of %d on one provider, since the others offered no more)", c.Offered, limit, n)
			}
		}
		if e.Chosen && c.CalibrationSigner != "" {
			s += "; calibration signed by " + c.CalibrationSigner
		}
		e.Reasons = []string{s}
		if e.Chosen {
			picks = append(picks, Pick{Index: i, Provider: c.Provider, Address: c.Address, Count: count[i]})
		}
	}
	return picks, explain
}

// ineligible returns why c fails the rules, nothing when it passes.
func ineligible(c *Candidate, rules Rules, methods []string) []string {
	if c.Err != nil {
		switch {
		case errors.Is(c.Err, ErrNoCapacity):
			return []string{"no capacity"}
		case errors.Is(c.Err, ErrRefused):
			return []string{c.Err.Error()}
		default:
			return []string{"unreachable: " + c.Err.Error()}
		}
	}
	var r []string
	if c.SpotCheckFailed {
		r = append(r, "calibration spot-check failed")
	}
	if c.Offered <= 0 {
		r = append(r, "no capacity")
	}
	if rules.MaxPricePerWork > 0 {
		if !(c.PricePerWorkMsat > 0) {
			r = append(r, fmt.Sprintf("flat rates: no price per unit of work to compare with max %s", num1(rules.MaxPricePerWork)))
		} else if c.PricePerWorkMsat > rules.MaxPricePerWork {
			why := fmt.Sprintf("price %s > max %s", num1(c.PricePerWorkMsat), num1(rules.MaxPricePerWork))
			switch {
			case c.Countered > 0 && c.ListPricePerWorkMsat > c.PricePerWorkMsat:
				why += fmt.Sprintf(" (its least: it came down from %s on a counter-offer of %s)", num1(c.ListPricePerWorkMsat), num1(c.Countered))
			case c.Countered > 0:
				why += fmt.Sprintf(" (it does not take counter-offers: %s was refused)", num1(c.Countered))
			}
			r = append(r, why)
		}
	}
	if rules.MinScore > 0 {
		if !(c.Score > 0) {
			r = append(r, fmt.Sprintf("uncalibrated: no score to compare with min %s", num1(rules.MinScore)))
		} else if c.Score < rules.MinScore {
			r = append(r, fmt.Sprintf("score %s < min %s", num1(c.Score), num1(rules.MinScore)))
		}
	}
	offers := c.Methods
	if len(offers) == 0 {
		offers = []string{MethodEmbedded}
	}
	if !slices.ContainsFunc(offers, func(m string) bool { return slices.Contains(methods, m) }) {
		r = append(r, fmt.Sprintf("no common payment method (offers %s; you pay %s)", strings.Join(offers, ", "), strings.Join(methods, ", ")))
	}
	if rules.MinReputation > 0 {
		if s := c.Reputation.Score(); s < rules.MinReputation {
			r = append(r, fmt.Sprintf("reputation %.2f < min %.2f", s, rules.MinReputation))
		}
	}
	return r
}

func effectivePrice(c *Candidate) float64 {
	if !(c.PricePerWorkMsat > 0) {
		return 0
	}
	return c.PricePerWorkMsat / (0.5 + 0.5*c.Reputation.Score())
}

func compareCandidates(a, b *Candidate) int {
	ap, bp := a.PricePerWorkMsat > 0, b.PricePerWorkMsat > 0
	if ap != bp {
		if ap {
			return -1
		}
		return 1
	}
	if ap {
		if c := cmp.Compare(effectivePrice(a), effectivePrice(b)); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(b.Reputation.Score(), a.Reputation.Score()); c != 0 {
		return c
	}
	if c := cmp.Compare(b.Score, a.Score); c != 0 {
		return c
	}
	if c := strings.Compare(a.Provider, b.Provider); c != 0 {
		return c
	}
	return strings.Compare(a.Address, b.Address)
}

// Total is the number of hosts of picks.
func Total(picks []Pick) int {
	t := 0
	for _, p := range picks {
		t += p.Count
	}
	return t
}

// Summarize says in one sentence what Choose got for n hosts and, when it
// is fewer, why: "3 of 5 hosts from 1 provider; not chosen: b:2222 (price
// 3.1 > max 2.0), c:2222 (unreachable: …)".
func Summarize(n int, picks []Pick, explain []Explanation) string {
	got := Total(picks)
	provs := map[string]bool{}
	for _, p := range picks {
		provs[p.Provider] = true
	}
	s := fmt.Sprintf("%d of %s from %d provider", got, hosts(n), len(provs))
	if len(provs) != 1 {
		s += "s"
	}
	if got >= n {
		return s
	}
	var why []string
	for _, e := range explain {
		if !e.Eligible {
			name := e.Address
			if name == "" {
				name = e.Provider
			}
			why = append(why, fmt.Sprintf("%s (%s)", name, e.Reason()))
		}
	}
	if len(why) == 0 {
		if len(explain) == 0 {
			return s + "; no providers known"
		}
		return s + "; the providers offered no more"
	}
	return s + "; not chosen: " + strings.Join(why, ", ")
}

func hosts(n int) string {
	if n == 1 {
		return "1 host"
	}
	return strconv.Itoa(n) + " hosts"
}

// num is x in its shortest form: 100, 2.5.
func num(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }

// num1 is x with at least one decimal: 2.0, 3.1, 0.45.
func num1(x float64) string {
	if x == math.Trunc(x) && math.Abs(x) < 1e15 {
		return strconv.FormatFloat(x, 'f', 1, 64)
	}
	return num(x)
}
