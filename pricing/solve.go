package pricing

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
)

// solution is what solve finds.
type solution struct {
	rates    []float64   // msat per counter unit
	scale    []float64   // column RMS, counter units per second
	sv       []float64   // all singular values of the scaled matrix
	variance []float64   // each singular value's share of the variance
	k, rank  int         // components kept; numerical rank
	loadings [][]float64 // k unit vectors over all counters
	varKept  float64
}

// solve fits non-negative rates r with v r ≈ s: column scaling, truncated
// SVD, ridge, NNLS on the reduced problem (see the package comment).
func solve(v *mat.Dense, s []float64, opts Options) (solution, error) {
	n, m := v.Dims()
	sol := solution{rates: make([]float64, m), scale: make([]float64, m)}

	// 1. Scale each column to unit RMS; columns no step exercised are left
	// out of the fit and priced at 0.
	var live []int
	for j := range m {
		col := mat.Col(nil, j, v)
		if peak := floats.Norm(col, math.Inf(1)); peak > 0 {
			floats.Scale(1/peak, col)
			sol.scale[j] = peak * floats.Norm(col, 2) / math.Sqrt(float64(n))
			live = append(live, j)
		}
	}
	if len(live) == 0 {
		return sol, fmt.Errorf("%w: no step moved any counter", ErrNoSignal)
	}
	a := mat.NewDense(n, len(live), nil)
	for c, j := range live {
		for i := range n {
			a.Set(i, c, v.At(i, j)/sol.scale[j])
		}
	}
	sNorm := floats.Norm(s, 2) / math.Sqrt(float64(n))
	if !(sNorm > 0) {
		return sol, fmt.Errorf("%w: every step is worth nothing", ErrCalibration)
	}

	// 2. Thin SVD, numerical rank, and the components to keep.
	var svd mat.SVD
	if !svd.Factorize(a, mat.SVDThin) {
		return sol, fmt.Errorf("%w: singular value decomposition did not converge", ErrNoSignal)
	}
	sol.sv = svd.Values(nil)
	var total float64
	for _, x := range sol.sv {
		total += x * x
	}
	for _, x := range sol.sv {
		sol.variance = append(sol.variance, x*x/total)
		if x > rankTol*sol.sv[0] {
			sol.rank++
		}
	}
	if sol.rank == 0 {
		return sol, fmt.Errorf("%w: the scaled calibration matrix is zero", ErrNoSignal)
	}
	if opts.Components > 0 {
		sol.k = min(opts.Components, sol.rank)
	} else {
		var cum float64
		for sol.k < sol.rank {
			cum += sol.variance[sol.k]
			sol.k++
			if cum >= opts.MinVariance*(1-1e-12) {
				break
			}
		}
	}
	for i := range sol.k {
		sol.varKept += sol.variance[i]
	}
	sol.varKept = math.Min(sol.varKept, 1)
	var u, w mat.Dense
	svd.UTo(&u)
	svd.VTo(&w)

	// 3. The reduced, ridged, non-negative problem in the scaled space:
	//    [ Σ_k W_kᵀ ]       [ U_kᵀ s ]
	//    [  √λ · I  ] x  ≈  [    0   ] ,  x ≥ 0,
	// with s divided by its RMS so the numbers stay near 1.
	lambda := opts.Ridge * sol.sv[sol.k-1] * sol.sv[sol.k-1]
	ml := len(live)
	e := mat.NewDense(sol.k+ml, ml, nil)
	g := make([]float64, sol.k+ml)
	for i := range sol.k {
		for c := range ml {
			e.Set(i, c, sol.sv[i]*w.At(c, i))
		}
		for r := range n {
			g[i] += u.At(r, i) * s[r] / sNorm
		}
	}
	for c := range ml {
		e.Set(sol.k+c, c, math.Sqrt(lambda))
	}
	x, err := nnls(e, g)
	if err != nil {
		return sol, fmt.Errorf("fit rates: %w", err)
	}

	// 4. Back to counter units.
	for c, j := range live {
		if x[c] > 0 {
			sol.rates[j] = x[c] * sNorm / sol.scale[j]
		}
	}
	for i := range sol.k {
		l := make([]float64, m)
		var sign float64 = 1
		var biggest float64
		for c := range ml {
			if y := w.At(c, i); math.Abs(y) > biggest {
				biggest, sign = math.Abs(y), math.Copysign(1, y)
			}
		}
		for c, j := range live {
			l[j] = sign*w.At(c, i) + 0 // +0 turns −0 into 0.
		}
		sol.loadings = append(sol.loadings, l)
	}
	return sol, nil
}

// maxFolds bounds the refits of the held-out estimate: leave-one-out up
// to maxFolds steps, maxFolds-fold cross-validation beyond.
const maxFolds = 100

// heldOut returns, for every step, the relative error of the charge for it
// by a model fitted without it (and, beyond maxFolds steps, without the
// other steps of its fold: step i is in fold i mod maxFolds). A fit that
// fails charges nothing (−1).
func heldOut(v *mat.Dense, s []float64, opts Options) []float64 {
	n, m := v.Dims()
	folds := min(n, maxFolds)
	out := make([]float64, n)
	for f := range folds {
		var keep []int
		for i := range n {
			if i%folds != f {
				keep = append(keep, i)
			}
		}
		sub := mat.NewDense(len(keep), m, nil)
		subS := make([]float64, len(keep))
		for r, i := range keep {
			sub.SetRow(r, v.RawRowView(i))
			subS[r] = s[i]
		}
		sol, err := solve(sub, subS, opts)
		for i := f; i < n; i += folds {
			out[i] = -1
			if err == nil {
				out[i] = (floats.Dot(v.RawRowView(i), sol.rates) - s[i]) / s[i]
			}
		}
	}
	return out
}
