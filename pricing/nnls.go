package pricing

import (
	"errors"
	"math"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
)

// errNNLSIterations means the active-set loop did not settle; it cannot
// happen in exact arithmetic and marks a numerically hopeless problem.
var errNNLSIterations = errors.New("non-negative least squares did not converge")

// nnls solves min ‖a x − b‖₂ subject to x ≥ 0 by the active-set method of
// Lawson and Hanson (Solving Least Squares Problems, 1974, ch. 23). a must
// have full column rank on every subset of columns it selects; Fit
// guarantees that by stacking √λ·I under the reduced system.
func nnls(a *mat.Dense, b []float64) ([]float64, error) {
	rows, cols := a.Dims()
	x := make([]float64, cols)
	passive := make([]bool, cols)
	w := make([]float64, cols)
	resid := make([]float64, rows)

	// Tolerance on the dual (gradient) as MATLAB's lsqnonneg uses.
	eps := math.Nextafter(1, 2) - 1
	tol := 10 * eps * mat.Norm(a, 1) * float64(max(rows, cols))
	gradient := func() {
		r := mat.NewVecDense(rows, resid)
		r.MulVec(a, mat.NewVecDense(cols, x))
		floats.SubTo(resid, b, resid)
		mat.NewVecDense(cols, w).MulVec(a.T(), r)
	}

	gradient()
	for iter := 0; ; iter++ {
		if iter > 3*cols+10 {
			return nil, errNNLSIterations
		}
		// The inactive variable whose increase lowers the residual fastest.
		t, best := -1, tol
		for j := range cols {
			if !passive[j] && w[j] > best {
				t, best = j, w[j]
			}
		}
		if t < 0 {
			return x, nil
		}
		passive[t] = true
		for inner := 0; ; inner++ {
			if inner > 3*cols+10 {
				return nil, errNNLSIterations
			}
			z, err := lsqSubset(a, b, passive)
			if err != nil {
				return nil, err
			}
			feasible := true
			for j := range cols {
				if passive[j] && z[j] <= 0 {
					feasible = false
				}
			}
			if feasible {
				copy(x, z)
				break
			}
			// Step from x towards z as far as x stays non-negative, then
			// release the variables that reached zero.
			alpha, hit := math.Inf(1), -1
			for j := range cols {
				if passive[j] && z[j] <= 0 {
					if s := x[j] / (x[j] - z[j]); s < alpha {
						alpha, hit = s, j
					}
				}
			}
			for j := range cols {
				x[j] += alpha * (z[j] - x[j])
				if passive[j] && (j == hit || x[j] <= 0) {
					passive[j] = false
					x[j] = 0
				}
			}
		}
		gradient()
	}
}

// lsqSubset solves the unconstrained least-squares problem on the columns
// marked in use, returning a full-length vector with zeros elsewhere.
func lsqSubset(a *mat.Dense, b []float64, use []bool) ([]float64, error) {
	rows, cols := a.Dims()
	var idx []int
	for j, u := range use {
		if u {
			idx = append(idx, j)
		}
	}
	sub := mat.NewDense(rows, len(idx), nil)
	for c, j := range idx {
		for i := range rows {
			sub.Set(i, c, a.At(i, j))
		}
	}
	var qr mat.QR
	qr.Factorize(sub)
	var z mat.VecDense
	if err := qr.SolveVecTo(&z, false, mat.NewVecDense(rows, b)); err != nil {
		return nil, err
	}
	out := make([]float64, cols)
	for c, j := range idx {
		out[j] = z.AtVec(c)
	}
	return out, nil
}
