package report

import (
	"math"
	"strings"
	"testing"
)

func TestTTwoSided(t *testing.T) {
	// Reference values from integrating the t density numerically.
	for _, c := range []struct{ t, dof, p float64 }{
		{2, 10, 0.07338803},
		{0, 5, 1},
		{-3.5, 4.3, 0.022127},
		{12, 2, 0.006873},
		{1.96, 1e6, 0.04999},
	} {
		if got := tTwoSided(c.t, c.dof); math.Abs(got-c.p) > 5e-4*math.Max(c.p, 0.01) {
			t.Errorf("p(t=%v, dof=%v) = %.6f, want %.6f", c.t, c.dof, got, c.p)
		}
	}
}

func TestWelch(t *testing.T) {
	for _, c := range []struct {
		name string
		a, b []float64
		mark string
	}{
		{"clearly different", []float64{100, 101, 99}, []float64{150, 151, 149}, "yes"},
		{"clearly the same", []float64{100, 110, 90}, []float64{101, 109, 91}, "~"},
		{"too few repeats", []float64{100, 101}, []float64{150, 151, 149}, "n/a"},
		{"one run each", []float64{100}, []float64{150}, "n/a"},
		{"unknowns do not count as repeats", []float64{100, 101, math.NaN()}, []float64{150, 151, 149}, "n/a"},
		// Without spread on either side there is no noise to weigh a
		// difference against: untested, whatever the means.
		{"no noise, different", []float64{5, 5, 5}, []float64{6, 6, 6}, "n/a"},
		{"no noise, same", []float64{5, 5, 5}, []float64{5, 5, 5}, "n/a"},
		{"no noise, zero counts", []float64{0, 0, 0, 0}, []float64{0, 0, 0}, "n/a"},
		{"no noise on one side only", []float64{5, 5, 5}, []float64{10, 11, 12}, "yes"},
		{"no noise, an unknown left out", []float64{5, 5, 5, math.NaN()}, []float64{6, 6, 6}, "n/a"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := welch(c.a, c.b)
			if got := s.Mark(); got != c.mark {
				t.Errorf("mark %q (p=%v), want %q", got, s.P, c.mark)
			}
			if !s.Tested && (!math.IsNaN(s.P) || s.Why == "") {
				t.Errorf("untested but p=%v, why %q", s.P, s.Why)
			}
			if s.Tested && (math.IsNaN(s.P) || s.Why != "") {
				t.Errorf("tested but p=%v, why %q", s.P, s.Why)
			}
		})
	}
}

func TestWelchWhy(t *testing.T) {
	if s := welch([]float64{5, 5, 5}, []float64{6, 6, 6}); s.Why != "no run-to-run spread on either side" || s.N1 != 3 || s.N2 != 3 {
		t.Errorf("zero spread: %+v", s)
	}
	if s := welch([]float64{5, 6}, []float64{6, 7, 8}); !strings.Contains(s.Why, "fewer than 3 a side") {
		t.Errorf("too few repeats: %+v", s)
	}
}
