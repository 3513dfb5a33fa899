package bench

import (
	"context"
	"errors"
	"testing"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// knee is a fake cluster: every rate up to cap passes.
func knee(cap float64, calls *[]float64) stepMeasurer {
	return func(_ context.Context, rate float64) (metrics.CapacityStep, error) {
		*calls = append(*calls, rate)
		return metrics.CapacityStep{Pass: rate <= cap, Achieved: min(rate, cap)}, nil
	}
}

func TestSearch(t *testing.T) {
	lim := searchLimits{Start: 1000, Max: 1e6, Min: 10, Precision: 0.05, MaxSteps: 30}
	for _, tc := range []struct {
		name      string
		cap       float64
		lim       searchLimits
		found     bool
		wantLimit bool // a failing rate bounds it
	}{
		{"knee above the start", 12100, lim, true, true},
		{"knee below the start", 330, lim, true, true},
		{"knee exactly at a ramp rate", 4000, lim, true, true},
		{"nothing meets the SLO", 5, lim, false, true},
		{"everything meets it: the ceiling", 1e9, lim, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls []float64
			s, err := search(context.Background(), knee(tc.cap, &calls), tc.lim)
			if err != nil {
				t.Fatal(err)
			}
			if s.Found != tc.found {
				t.Fatalf("found %v, want %v (steps %v)", s.Found, tc.found, calls)
			}
			if len(s.Steps) != len(calls) {
				t.Errorf("%d steps recorded, %d measured", len(s.Steps), len(calls))
			}
			if (s.Limit > 0) != tc.wantLimit {
				t.Errorf("limit %v, want one: %v", s.Limit, tc.wantLimit)
			}
			if !tc.found {
				return
			}
			if s.Capacity > tc.cap {
				t.Errorf("capacity %.0f above the knee %.0f", s.Capacity, tc.cap)
			}
			if tc.wantLimit {
				if s.Limit <= tc.cap {
					t.Errorf("limit %.0f not above the knee %.0f", s.Limit, tc.cap)
				}
				if (s.Limit-s.Capacity)/s.Capacity > tc.lim.Precision {
					t.Errorf("bracket %.0f-%.0f wider than %.0f%%", s.Capacity, s.Limit, 100*tc.lim.Precision)
				}
			} else if s.Capacity != tc.lim.Max {
				t.Errorf("capacity %.0f, want the ceiling %.0f", s.Capacity, tc.lim.Max)
			}
			if last := s.Steps[len(s.Steps)-1]; tc.wantLimit && (last.Phase != "confirm" || last.Rate != s.Capacity) {
				t.Errorf("the capacity was not confirmed: last step %+v", last)
			}
			for i, st := range s.Steps {
				if st.Rate != calls[i] || (st.Phase != "ramp" && st.Phase != "bisect" && st.Phase != "confirm") {
					t.Errorf("step %d: %+v", i, st)
				}
			}
		})
	}
}

// TestSearchConfirms: a rate that passed once by luck and fails when
// measured again is the limit, and the search goes on below it.
func TestSearchConfirms(t *testing.T) {
	lim := searchLimits{Start: 1000, Max: 1e6, Min: 10, Precision: 0.05, MaxSteps: 30}
	lucky := map[float64]bool{}
	var calls []float64
	measure := func(_ context.Context, rate float64) (metrics.CapacityStep, error) {
		calls = append(calls, rate)
		pass := rate <= 5000
		if rate > 5000 && rate < 6000 && !lucky[rate] {
			lucky[rate], pass = true, true // passes the first time only
		}
		return metrics.CapacityStep{Pass: pass, Achieved: rate}, nil
	}
	s, err := search(context.Background(), measure, lim)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Found || s.Capacity > 5000 || s.Capacity < 5000/(1+lim.Precision) {
		t.Fatalf("capacity %.0f (limit %.0f), want just under 5000; steps %v", s.Capacity, s.Limit, calls)
	}
	if last := s.Steps[len(s.Steps)-1]; last.Phase != "confirm" || !last.Pass {
		t.Errorf("the search ended on %+v, want a confirmed pass", last)
	}
}

// TestSearchConfirmGoesLower: the only rate that passed fails when
// confirmed, and nothing lower was tried: the search halves below it.
func TestSearchConfirmGoesLower(t *testing.T) {
	lim := searchLimits{Start: 1000, Max: 1e6, Min: 10, Precision: 0.05, MaxSteps: 40}
	seen := map[float64]int{}
	measure := func(_ context.Context, rate float64) (metrics.CapacityStep, error) {
		seen[rate]++
		pass := rate <= 600 || (rate == 1000 && seen[rate] == 1) // 1000 passes once, by luck
		return metrics.CapacityStep{Pass: pass, Achieved: rate}, nil
	}
	s, err := search(context.Background(), measure, lim)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Found || s.Capacity > 600 || s.Capacity < 600/(1+lim.Precision) {
		t.Fatalf("capacity %.0f (found %v, limit %.0f), want just under 600; steps %+v", s.Capacity, s.Found, s.Limit, s.Steps)
	}
}

func TestSearchStops(t *testing.T) {
	lim := searchLimits{Start: 1000, Max: 1e6, Min: 10, Precision: 0.001, MaxSteps: 6}
	var calls []float64
	s, err := search(context.Background(), knee(12100, &calls), lim)
	if err != nil || len(calls) != 6 || !s.Found || s.Limit == 0 {
		t.Fatalf("a spent step budget: err %v, %d steps, %+v", err, len(calls), s)
	}
	boom := errors.New("node down")
	n := 0
	s, err = search(context.Background(), func(context.Context, float64) (metrics.CapacityStep, error) {
		n++
		if n == 3 {
			return metrics.CapacityStep{}, boom
		}
		return metrics.CapacityStep{Pass: true}, nil
	}, lim)
	if !errors.Is(err, boom) || len(s.Steps) != 2 || s.Capacity != 2000 {
		t.Fatalf("a measurer's error: %v, %+v", err, s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := search(ctx, knee(1, &calls), lim); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled search: %v", err)
	}
}
