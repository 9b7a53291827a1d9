package market

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zennet/zennet/internal/testenv"
)

func cand(name string, offered int, price, score float64) Candidate {
	return Candidate{Provider: "SHA256:" + name, Address: name + ":2222", Offered: offered,
		PricePerWorkMsat: price, Score: score, Methods: []string{MethodEmbedded}}
}

func with(c Candidate, f func(*Candidate)) Candidate { f(&c); return c }

func rep(completed, bad uint64) Record { return Record{Completed: completed, Dropped: bad} }

func TestChooseReasons(t *testing.T) {
	for _, tt := range []struct {
		name   string
		c      Candidate
		rules  Rules
		reason string
	}{
		{"price", cand("a", 4, 3.1, 1), Rules{MaxPricePerWork: 2}, "price 3.1 > max 2.0"},
		{"flat rates under a max price", cand("a", 4, 0, 1), Rules{MaxPricePerWork: 2}, "flat rates: no price per unit of work to compare with max 2.0"},
		{"no capacity", cand("a", 0, 1, 1), Rules{}, "no capacity"},
		{"capacity error", with(cand("a", 0, 1, 1), func(c *Candidate) { c.Err = fmt.Errorf("%w: 0 of 4 hosts", ErrNoCapacity) }), Rules{}, "no capacity"},
		{"unreachable", with(cand("a", 0, 1, 1), func(c *Candidate) { c.Err = errors.New("dial tcp 10.0.0.1:2222: connection refused") }), Rules{},
			"unreachable: dial tcp 10.0.0.1:2222: connection refused"},
		{"refused", with(cand("a", 0, 1, 1), func(c *Candidate) { c.Err = fmt.Errorf("%w: version mismatch", ErrRefused) }), Rules{}, "refused: version mismatch"},
		{"spot-check", with(cand("a", 4, 1, 1), func(c *Candidate) { c.SpotCheckFailed = true }), Rules{}, "calibration spot-check failed"},
		{"score", cand("a", 4, 1, 0.4), Rules{MinScore: 0.5}, "score 0.4 < min 0.5"},
		{"uncalibrated", cand("a", 4, 1, 0), Rules{MinScore: 0.5}, "uncalibrated: no score to compare with min 0.5"},
		{"method", with(cand("a", 4, 1, 1), func(c *Candidate) { c.Methods = []string{MethodLightning} }), Rules{},
			"no common payment method (offers lightning; you pay embedded)"},
		{"method, renter's list", cand("a", 4, 1, 1), Rules{Methods: []string{MethodLightning}},
			"no common payment method (offers embedded; you pay lightning)"},
		{"reputation", with(cand("a", 4, 1, 1), func(c *Candidate) { c.Reputation = Record{Dropped: 3} }), Rules{MinReputation: 0.5},
			"reputation 0.20 < min 0.50"},
		{"several", with(cand("a", 0, 3.1, 0.4), func(c *Candidate) { c.SpotCheckFailed = true }), Rules{MaxPricePerWork: 2, MinScore: 0.5},
			"calibration spot-check failed; no capacity; price 3.1 > max 2.0; score 0.4 < min 0.5"},
		{"chosen", cand("a", 4, 100, 1), Rules{}, "chosen: 3 hosts at 100 msat per unit of work"},
		{"chosen at max", cand("a", 4, 2, 1), Rules{MaxPricePerWork: 2, MinScore: 1, MinReputation: 0.5}, "chosen: 3 hosts at 2 msat per unit of work"},
		{"chosen, flat", cand("a", 4, 0, 0), Rules{}, "chosen: 3 hosts at flat rates"},
		{"counter-offer met", with(cand("a", 4, 2, 1), func(c *Candidate) { c.ListPricePerWorkMsat, c.Countered = 3, 2 }), Rules{MaxPricePerWork: 2},
			"chosen: 3 hosts at 2 msat per unit of work (came down from 3 on a counter-offer of 2)"},
		{"counter-offer, floor above the max", with(cand("a", 4, 2.5, 1), func(c *Candidate) { c.ListPricePerWorkMsat, c.Countered = 3, 2 }), Rules{MaxPricePerWork: 2},
			"price 2.5 > max 2.0 (its least: it came down from 3.0 on a counter-offer of 2.0)"},
		{"counter-offer refused", with(cand("a", 4, 3, 1), func(c *Candidate) { c.Countered = 2 }), Rules{MaxPricePerWork: 2},
			"price 3.0 > max 2.0 (it does not take counter-offers: 2.0 was refused)"},
		{"chosen, who signed", with(cand("a", 4, 100, 1), func(c *Candidate) { c.CalibrationSigner = "its own key" }), Rules{},
			"chosen: 3 hosts at 100 msat per unit of work; calibration signed by its own key"},
		{"chosen, no methods named", with(cand("a", 1, 0, 0), func(c *Candidate) { c.Methods = nil }), Rules{}, "chosen: 1 host at flat rates"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			picks, ex := Choose([]Candidate{tt.c}, 3, tt.rules)
			if len(ex) != 1 {
				t.Fatalf("%d explanations", len(ex))
			}
			if got := ex[0].Reason(); got != tt.reason {
				t.Fatalf("reason %q, want %q", got, tt.reason)
			}
			chosen := strings.HasPrefix(tt.reason, "chosen")
			if ex[0].Chosen != chosen || (len(picks) == 1) != chosen {
				t.Fatalf("chosen %v, picks %v", ex[0].Chosen, picks)
			}
			if chosen && (picks[0].Count != ex[0].Count || picks[0].Provider != "SHA256:a") {
				t.Fatalf("pick %+v, explanation %+v", picks[0], ex[0])
			}
		})
	}
}

func counts(picks []Pick) string {
	var s []string
	for _, p := range picks {
		s = append(s, fmt.Sprintf("%s=%d", strings.TrimPrefix(p.Provider, "SHA256:"), p.Count))
	}
	return strings.Join(s, " ")
}

func TestChooseSpreading(t *testing.T) {
	for _, tt := range []struct {
		name  string
		cands []Candidate
		n     int
		rules Rules
		want  string // picks, best first
		total int
	}{
		{"one provider takes all", []Candidate{cand("a", 10, 1, 1)}, 4, Rules{}, "a=4", 4},
		{"two providers, half each", []Candidate{cand("a", 10, 1, 1), cand("b", 10, 2, 1)}, 4, Rules{}, "a=2 b=2", 4},
		{"odd n: the cheaper gets the larger half", []Candidate{cand("b", 10, 2, 1), cand("a", 10, 1, 1)}, 5, Rules{}, "a=3 b=2", 5},
		{"three providers: the two cheapest", []Candidate{cand("c", 10, 3, 1), cand("a", 10, 1, 1), cand("b", 10, 2, 1)}, 4, Rules{}, "a=2 b=2", 4},
		{"the second cannot make up the rest: the best gives more", []Candidate{cand("a", 10, 1, 1), cand("b", 1, 2, 1)}, 4, Rules{}, "a=3 b=1", 4},
		{"ineligible others do not count for spreading", []Candidate{cand("a", 10, 1, 1), cand("b", 10, 5, 1)}, 4, Rules{MaxPricePerWork: 2}, "a=4", 4},
		{"explicit share is strict", []Candidate{cand("a", 10, 1, 1), cand("b", 1, 2, 1)}, 4, Rules{MaxShare: 0.5}, "a=2 b=1", 3},
		{"explicit share 1/3", []Candidate{cand("a", 10, 1, 1), cand("b", 10, 2, 1), cand("c", 10, 3, 1), cand("d", 10, 4, 1)}, 6, Rules{MaxShare: 1.0 / 3}, "a=2 b=2 c=2", 6},
		{"not enough in all", []Candidate{cand("a", 2, 1, 1), cand("b", 1, 2, 1)}, 5, Rules{}, "a=2 b=1", 3},
		{"flat rates last", []Candidate{cand("flat", 10, 0, 0), cand("a", 10, 9, 1), cand("b", 10, 8, 1)}, 6, Rules{}, "b=3 a=3", 6},
		{"flat rates fill in", []Candidate{cand("flat", 10, 0, 0), cand("a", 2, 9, 1)}, 6, Rules{}, "a=2 flat=4", 6},
		{"reputation weighs the price", []Candidate{
			with(cand("cheap-bad", 10, 100, 1), func(c *Candidate) { c.Reputation = rep(0, 8) }),  // 100 / (0.5+0.5*0.1) = 181.8
			with(cand("dear-good", 10, 120, 1), func(c *Candidate) { c.Reputation = rep(18, 0) }), // 120 / (0.5+0.5*0.95) = 123.1
		}, 3, Rules{}, "dear-good=2 cheap-bad=1", 3},
		{"ties: reputation, then score, then key", []Candidate{
			cand("z", 10, 1, 1), cand("y", 10, 1, 2), with(cand("x", 10, 1, 1), func(c *Candidate) { c.Reputation = rep(1, 1) }),
		}, 2, Rules{MaxShare: 0.5}, "y=1 x=1", 2},
		{"same provider at two addresses shares one cap", []Candidate{
			cand("a", 10, 1, 1), with(cand("a", 10, 1, 1), func(c *Candidate) { c.Address = "a2:2222" }), cand("b", 10, 2, 1),
		}, 4, Rules{}, "a=2 b=2", 4},
		{"zero hosts", []Candidate{cand("a", 10, 1, 1)}, 0, Rules{}, "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			picks, ex := Choose(tt.cands, tt.n, tt.rules)
			if got := counts(picks); got != tt.want {
				t.Errorf("picks %q, want %q", got, tt.want)
			}
			if Total(picks) != tt.total {
				t.Errorf("total %d, want %d", Total(picks), tt.total)
			}
			if len(ex) != len(tt.cands) {
				t.Fatalf("%d explanations for %d candidates", len(ex), len(tt.cands))
			}
			for i, e := range ex {
				if e.Index != i || len(e.Reasons) == 0 {
					t.Errorf("explanation %d: %+v", i, e)
				}
				t.Logf("%s: %s", e.Address, e.Reason())
			}
			t.Log(Summarize(tt.n, picks, ex))
		})
	}
}

func TestChooseNotNeeded(t *testing.T) {
	_, ex := Choose([]Candidate{cand("a", 10, 1, 1), cand("b", 10, 2, 1), cand("c", 10, 3, 1)}, 4, Rules{})
	if got := ex[2].Reason(); got != "not needed: better offers cover all 4 hosts" {
		t.Fatalf("reason %q", got)
	}
	if !ex[2].Eligible || ex[2].Chosen {
		t.Fatalf("%+v", ex[2])
	}
	_, ex = Choose([]Candidate{cand("a", 10, 1, 1), cand("b", 1, 2, 1)}, 4, Rules{MaxShare: 0.5})
	if got := ex[0].Reason(); got != "chosen: 2 hosts at 1 msat per unit of work (of 10 offered: at most 2 of 4 on one provider)" {
		t.Fatalf("reason %q", got)
	}
}

func TestSummarize(t *testing.T) {
	cands := []Candidate{
		cand("a", 2, 1, 1),
		cand("b", 4, 3.1, 1),
		with(cand("c", 0, 1, 1), func(c *Candidate) { c.Err = errors.New("timeout") }),
	}
	picks, ex := Choose(cands, 5, Rules{MaxPricePerWork: 2})
	got := Summarize(5, picks, ex)
	want := "2 of 5 hosts from 1 provider; not chosen: b:2222 (price 3.1 > max 2.0), c:2222 (unreachable: timeout)"
	if got != want {
		t.Fatalf("Summarize = %q\nwant %q", got, want)
	}
	picks, ex = Choose(cands[:1], 1, Rules{})
	if got := Summarize(1, picks, ex); got != "1 of 1 host from 1 provider" {
		t.Fatalf("Summarize = %q", got)
	}
	if got := Summarize(3, nil, nil); got != "0 of 3 hosts from 0 providers; no providers known" {
		t.Fatalf("Summarize = %q", got)
	}
}

func TestCandidateFrom(t *testing.T) {
	s := testenv.Signer(t)
	a := announce(t, s, 1, t0, 0)
	c := CandidateFrom(&a)
	if c.Provider != a.Fingerprint() || c.Address != a.Address || c.PricePerWorkMsat != 100 || c.Score != 1.25 || len(c.Methods) != 2 {
		t.Fatalf("CandidateFrom = %+v", c)
	}
	_ = time.Second
}
