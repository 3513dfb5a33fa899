package script

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// draws evaluates "\set x EXPR" n times with a fixed seed.
func draws(t *testing.T, expr string, seed uint64, n int) []int64 {
	t.Helper()
	s := mustParse(t, `\set x `+expr+"\nSELECT 1")
	st := s.NewState(rand.New(rand.NewPCG(seed, 99)), nil)
	out := make([]int64, n)
	for i := range out {
		if err := st.Set(&s.Steps[0]); err != nil {
			t.Fatal(err)
		}
		v, _ := st.Var("x")
		out[i] = v.(int64)
	}
	return out
}

func TestDistributionBounds(t *testing.T) {
	ranges := []struct{ lo, hi int64 }{
		{1, 1}, {1, 2}, {-5, 5}, {-100, -90}, {1, 100000}, {0, 1 << 62},
		{math.MinInt64 + 2, 0}, {math.MaxInt64 - 10, math.MaxInt64},
	}
	funcs := []string{"random(%d, %d)", "random_exponential(%d, %d, 0.5)", "random_exponential(%d, %d, 30)",
		"random_gaussian(%d, %d, 2.0)", "random_gaussian(%d, %d, 10)", "random_zipfian(%d, %d, 1.001)",
		"random_zipfian(%d, %d, 3)", "random_zipfian(%d, %d, 1000)"}
	for _, f := range funcs {
		for _, r := range ranges {
			expr := fmt.Sprintf(f, r.lo, r.hi)
			t.Run(expr, func(t *testing.T) {
				n := 20000
				if testing.Short() {
					n = 2000
				}
				seen := map[int64]bool{}
				for _, x := range draws(t, expr, 1, n) {
					if x < r.lo || x > r.hi {
						t.Fatalf("draw %d outside [%d, %d]", x, r.lo, r.hi)
					}
					seen[x] = true
				}
				// Small ranges must be covered at both ends, except by the
				// distributions that all but never reach the top.
				if r.hi-r.lo == 1 && (!seen[r.lo] || !seen[r.hi]) && f == "random(%d, %d)" {
					t.Errorf("drew only %v", seen)
				}
			})
		}
	}
}

func TestDistributionDeterminism(t *testing.T) {
	for _, expr := range []string{"random(1, 1000000)", "random_exponential(1, 1000000, 3)",
		"random_gaussian(1, 1000000, 2.5)", "random_zipfian(1, 1000000, 1.2)"} {
		t.Run(expr, func(t *testing.T) {
			a, b, c := draws(t, expr, 7, 500), draws(t, expr, 7, 500), draws(t, expr, 8, 500)
			same := 0
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("draw %d: %d then %d with the same seed", i, a[i], b[i])
				}
				if a[i] == c[i] {
					same++
				}
			}
			if same > 250 {
				t.Errorf("%d of 500 draws equal with different seeds", same)
			}
		})
	}
}

// share returns the fraction of xs within [lo, hi].
func share(xs []int64, lo, hi int64) float64 {
	n := 0
	for _, x := range xs {
		if x >= lo && x <= hi {
			n++
		}
	}
	return float64(n) / float64(len(xs))
}

func TestDistributionShape(t *testing.T) {
	const n = 200000
	within := func(name string, got, lo, hi float64) {
		t.Helper()
		if got < lo || got > hi {
			t.Errorf("%s = %.4f, want in [%.4f, %.4f]", name, got, lo, hi)
		}
	}

	u := draws(t, "random(1, 10)", 11, n)
	for k := int64(1); k <= 10; k++ {
		within(fmt.Sprintf("uniform P(%d)", k), share(u, k, k), 0.095, 0.105)
	}

	// Exponential on [1, 1000] with parameter 5: the first tenth holds
	// (1 - e^-0.5) / (1 - e^-5) of the draws, the last tenth far fewer.
	e := draws(t, "random_exponential(1, 1000, 5.0)", 12, n)
	want := (1 - math.Exp(-0.5)) / (1 - math.Exp(-5))
	within("exponential first tenth", share(e, 1, 100), want-0.01, want+0.01)
	within("exponential last tenth", share(e, 901, 1000), 0, 0.01)

	// Gaussian on [1, 1000] with parameter 4: centred, one standard
	// deviation is 1000/8 = 125, which holds about 68.3% of the draws.
	g := draws(t, "random_gaussian(1, 1000, 4.0)", 13, n)
	var sum float64
	for _, x := range g {
		sum += float64(x)
	}
	within("gaussian mean", sum/n, 498, 503)
	within("gaussian within one sigma", share(g, 376, 625), 0.67, 0.70)

	// Zipfian with parameter s: P(k)/P(k+1) = ((k+1)/k)^s, so
	// random_zipfian(1, ..., 2.5) draws 1 about 5.66 times as often as 2.
	z := draws(t, "random_zipfian(1, 1000, 2.5)", 14, n)
	p1, p2, p3 := share(z, 1, 1), share(z, 2, 2), share(z, 3, 3)
	within("zipfian P(1)/P(2)", p1/p2, 5.3, 6.0)
	within("zipfian P(2)/P(3)", p2/p3, 2.5, 3.0)
	// The same law at the parameter's lower limit on a tiny range, where
	// pgbench's rejection loop is slowest: P(1)/P(2) = 2^1.001.
	z2 := draws(t, "random_zipfian(1, 2, 1.001)", 15, n)
	within("zipfian(1.001) P(1)/P(2)", share(z2, 1, 1)/share(z2, 2, 2), 1.95, 2.06)
	if share(z, 1, 10) < 0.95 {
		t.Errorf("zipfian(2.5) puts only %.3f in the first 10", share(z, 1, 10))
	}
}

func TestHash(t *testing.T) {
	tests := []struct {
		fn         func(int64, uint64) int64
		x          int64
		seed, want int64
	}{
		{hashMurmur2, 10, 5432, -5817877081768721676},
		{hashFNV1a, 10, 5432, -7793829335365542153},
	}
	for _, tt := range tests {
		if got := tt.fn(tt.x, uint64(tt.seed)); got != tt.want {
			t.Errorf("hash(%d, %d) = %d, want %d", tt.x, tt.seed, got, tt.want)
		}
	}
}

func TestPermute(t *testing.T) {
	// pgbench's portability check, with size = maxint - 10.
	size := int64(math.MaxInt64 - 10)
	want := []int64{520382784483822430, 1143715004660802862, 447293596416496998,
		916527772266572956, 2763809008686028849, 8648551549198294572, 4542876852200565125}
	for i, w := range want {
		if got := permute(size-int64(i+1), size, 5432); got != w {
			t.Errorf("permute(size-%d, size, 5432) = %d, want %d", i+1, got, w)
		}
	}

	// A permutation: every size and seed maps [0, size) onto itself.
	for size := int64(1); size <= 70; size++ {
		for _, seed := range []int64{0, 1, 5432, -7} {
			seen := make([]bool, size)
			for v := range size {
				p := permute(v, size, seed)
				if p < 0 || p >= size || seen[p] {
					t.Fatalf("permute(%d, %d, %d) = %d: out of range or repeated", v, size, seed, p)
				}
				seen[p] = true
				if q := permute(v+size, size, seed); q != p {
					t.Fatalf("permute(%d) = %d but permute(%d) = %d: not modulo size", v, p, v+size, q)
				}
			}
		}
	}
	if p := permute(-1, 1000, 3); p < 0 || p >= 1000 {
		t.Errorf("permute(-1, 1000) = %d", p)
	}
}
