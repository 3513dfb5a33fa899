package report

import (
	"fmt"
	"math"
)

// Significance of a difference between two sets of repeats.
//
// The test is Welch's two-sample t-test (unequal variances, Welch–
// Satterthwaite degrees of freedom), not benchstat's Mann-Whitney U test:
// with 3 repeats a side, the smallest two-sided p a rank test can give is
// 2/C(6,3) = 0.1, so Mann-Whitney could never call a difference real at
// the 0.05 level, however large. Benchmarks of a cluster are repeated 3
// to 5 times, not 10; the t-test can decide with that, at the price of
// assuming roughly normal run-to-run noise.
type Significance struct {
	// Tested is false when either side has fewer than minRepeats runs, or
	// when neither side varied from run to run (there is no noise to
	// weigh the difference against): then no claim is made either way,
	// and Why says which.
	Tested bool
	N1, N2 int
	P      float64 // two-sided; NaN when not tested
	Why    string  // why not tested; "" when tested
}

// minRepeats is the fewest runs a side needs before its spread says
// anything about noise.
const minRepeats = 3

// alpha is the level under which a difference is reported as real.
const alpha = 0.05

// Significant reports a tested difference with p < 0.05.
func (s Significance) Significant() bool { return s.Tested && s.P < alpha }

// Mark is how tables show the verdict: "yes" (p < 0.05), "~" (inside
// run-to-run noise) or "n/a" (not tested: too few repeats, or no
// run-to-run spread on either side).
func (s Significance) Mark() string {
	switch {
	case !s.Tested:
		return "n/a"
	case s.Significant():
		return "yes"
	default:
		return "~"
	}
}

// welch tests whether a and b have different means. NaN values (unknown
// figures of a run) are left out before counting repeats.
func welch(a, b []float64) Significance {
	a, b = knownValues(a), knownValues(b)
	s := Significance{N1: len(a), N2: len(b), P: math.NaN()}
	if len(a) < minRepeats || len(b) < minRepeats {
		s.Why = fmt.Sprintf("%d vs %d runs, fewer than %d a side", len(b), len(a), minRepeats)
		return s
	}
	m1, m2 := meanOf(a), meanOf(b)
	v1, v2 := sampleVariance(a)/float64(len(a)), sampleVariance(b)/float64(len(b))
	se2 := v1 + v2
	if se2 == 0 {
		// Identical runs on both sides (a count that stayed 0, a rate a
		// schedule fixed): the t statistic is 0/0 or infinite, and a
		// spread of zero says the repeats measured no noise, not that
		// there is none. No claim either way.
		s.Why = "no run-to-run spread on either side"
		return s
	}
	s.Tested = true
	t := (m1 - m2) / math.Sqrt(se2)
	dof := se2 * se2 / (v1*v1/float64(len(a)-1) + v2*v2/float64(len(b)-1))
	s.P = tTwoSided(t, dof)
	return s
}

// tTwoSided is P(|T| >= |t|) for Student's t with dof degrees of freedom,
// through the regularized incomplete beta function: the identity
// P = I_{dof/(dof+t²)}(dof/2, 1/2) holds for any real dof, which Welch's
// fractional degrees of freedom need.
func tTwoSided(t, dof float64) float64 {
	if math.IsNaN(t) || math.IsNaN(dof) || dof <= 0 {
		return math.NaN()
	}
	if math.IsInf(t, 0) {
		return 0
	}
	return regIncBeta(dof/2, 0.5, dof/(dof+t*t))
}

// regIncBeta is I_x(a, b), by the continued fraction of Numerical
// Recipes (modified Lentz), used on the side where it converges fast.
// A hand-written one rather than gonum's: gonum is only an indirect
// dependency of this module, and importing it would change go.mod.
func regIncBeta(a, b, x float64) float64 {
	switch {
	case x <= 0:
		return 0
	case x >= 1:
		return 1
	}
	lga, _ := math.Lgamma(a)
	lgb, _ := math.Lgamma(b)
	lgab, _ := math.Lgamma(a + b)
	front := math.Exp(lgab - lga - lgb + a*math.Log(x) + b*math.Log1p(-x))
	if x < (a+1)/(a+b+2) {
		return front * betaCF(a, b, x) / a
	}
	return 1 - front*betaCF(b, a, 1-x)/b
}

func betaCF(a, b, x float64) float64 {
	const (
		maxIter = 300
		eps     = 1e-15
		tiny    = 1e-300
	)
	qab, qap, qam := a+b, a+1, a-1
	c, d := 1.0, 1-qab*x/qap
	if math.Abs(d) < tiny {
		d = tiny
	}
	d = 1 / d
	h := d
	for m := 1; m <= maxIter; m++ {
		fm := float64(m)
		m2 := 2 * fm
		step := func(aa float64) float64 {
			d = 1 + aa*d
			if math.Abs(d) < tiny {
				d = tiny
			}
			c = 1 + aa/c
			if math.Abs(c) < tiny {
				c = tiny
			}
			d = 1 / d
			return d * c
		}
		h *= step(fm * (b - fm) * x / ((qam + m2) * (a + m2)))
		del := step(-(a + fm) * (qab + fm) * x / ((a + m2) * (qap + m2)))
		h *= del
		if math.Abs(del-1) < eps {
			break
		}
	}
	return h
}

func knownValues(xs []float64) []float64 {
	out := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			out = append(out, x)
		}
	}
	return out
}

// meanOf is the mean of the known values; NaN when there is none.
func meanOf(xs []float64) float64 {
	xs = knownValues(xs)
	if len(xs) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// sampleVariance is the sample variance (n-1) of the known values; 0 for one.
func sampleVariance(xs []float64) float64 {
	xs = knownValues(xs)
	if len(xs) < 2 {
		return 0
	}
	m := meanOf(xs)
	var s float64
	for _, x := range xs {
		s += (x - m) * (x - m)
	}
	return s / float64(len(xs)-1)
}

// sampleStddev is the sample standard deviation: the ± of a cell's figures.
func sampleStddev(xs []float64) float64 { return math.Sqrt(sampleVariance(xs)) }
