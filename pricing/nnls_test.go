package pricing

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
)

func residual(a *mat.Dense, x, b []float64) float64 {
	rows, _ := a.Dims()
	r := make([]float64, rows)
	mat.NewVecDense(rows, r).MulVec(a, mat.NewVecDense(len(x), x))
	floats.Sub(r, b)
	return floats.Norm(r, 2)
}

// bruteNNLS is the best non-negative least-squares solution over every
// support: the optimum is the unconstrained solution on its own support.
func bruteNNLS(t *testing.T, a *mat.Dense, b []float64) []float64 {
	_, cols := a.Dims()
	best, bestR := make([]float64, cols), floats.Norm(b, 2)
	for mask := 1; mask < 1<<cols; mask++ {
		use := make([]bool, cols)
		for j := range cols {
			use[j] = mask&(1<<j) != 0
		}
		x, err := lsqSubset(a, b, use)
		if err != nil {
			t.Fatal(err)
		}
		if floats.Min(x) < 0 {
			continue
		}
		if r := residual(a, x, b); r < bestR {
			best, bestR = x, r
		}
	}
	return best
}

func TestNNLS(t *testing.T) {
	tests := []struct {
		name string
		a    []float64
		rows int
		b    []float64
		want []float64
	}{
		{"interior", []float64{1, 0, 0, 1, 1, 1}, 3, []float64{1, 2, 3}, []float64{1, 2}},
		{"one bound", []float64{1, 0, 0, 1}, 2, []float64{1, -2}, []float64{1, 0}},
		{"all bound", []float64{1, 0, 0, 1}, 2, []float64{-1, -2}, []float64{0, 0}},
		{"zero right-hand side", []float64{2, 1, 1, 3}, 2, []float64{0, 0}, []float64{0, 0}},
		// min ‖x₁ + x₂ − 1‖ + ‖x₁ − x₂ + 1‖ … unconstrained x = (0, 1)
		// exactly on the boundary.
		{"on the boundary", []float64{1, 1, 1, -1}, 2, []float64{1, -1}, []float64{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mat.NewDense(tt.rows, len(tt.a)/tt.rows, tt.a)
			x, err := nnls(a, tt.b)
			if err != nil {
				t.Fatal(err)
			}
			for j := range x {
				if math.Abs(x[j]-tt.want[j]) > 1e-12 {
					t.Fatalf("x = %v, want %v", x, tt.want)
				}
			}
		})
	}
}

// TestNNLSBrute checks nnls against exhaustive search on random problems,
// over- and under-determined, the ridged kind Fit builds among them.
func TestNNLSBrute(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		rows, cols := 1+rng.IntN(7), 1+rng.IntN(6)
		ridge := i%2 == 0
		extra := 0
		if ridge {
			extra = cols
		}
		a := mat.NewDense(rows+extra, cols, nil)
		b := make([]float64, rows+extra)
		for r := range rows {
			for c := range cols {
				a.Set(r, c, rng.NormFloat64())
			}
			b[r] = rng.NormFloat64()
		}
		if ridge {
			for c := range cols {
				a.Set(rows+c, c, 1e-2)
			}
		} else if rows < cols {
			continue // not of full column rank: the brute force is ambiguous
		}
		x, err := nnls(a, b)
		if err != nil {
			t.Fatalf("problem %d: %v", i, err)
		}
		if floats.Min(x) < 0 {
			t.Fatalf("problem %d: negative solution %v", i, x)
		}
		want := bruteNNLS(t, a, b)
		if got, best := residual(a, x, b), residual(a, want, b); got > best*(1+1e-9)+1e-12 {
			t.Fatalf("problem %d: residual %v, brute force %v (x %v, want %v)", i, got, best, x, want)
		}
	}
}
