package bench

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// A capacity search is a ramp that brackets the highest rate meeting the
// SLO, then a bisection of the bracket. It knows nothing of clusters: it
// asks a measurer for one step at a rate, so its logic is tested with a
// fake one and no timing.

// stepMeasurer measures one open-loop step at rate reads/s.
type stepMeasurer func(ctx context.Context, rate float64) (metrics.CapacityStep, error)

// searchLimits bound a search.
type searchLimits struct {
	Start     float64 // the ramp's first rate
	Max       float64 // the ramp stops here: capacity is then "at least"
	Min       float64 // a first step that fails is halved down to this
	Precision float64 // stop when (limit - capacity) / capacity <= this
	MaxSteps  int     // a search measures at most this many steps
}

// search finds the highest rate whose step passes. The ramp doubles from
// Start while steps pass (or halves while they fail, from the first),
// then bisects between the last pass and the first failure. ctx's end or
// a measurer's error stops it with what it has found so far.
func search(ctx context.Context, measure stepMeasurer, lim searchLimits) (metrics.CapacitySeries, error) {
	var s metrics.CapacitySeries
	var pass, fail float64 // the bracket: the highest rate passed, the lowest failed (0: none yet)
	step := func(phase string, rate float64) (bool, error) {
		if len(s.Steps) >= lim.MaxSteps {
			return false, errSteps
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
		st, err := measure(ctx, rate)
		st.Phase, st.Rate = phase, rate
		if err != nil {
			return false, err
		}
		s.Steps = append(s.Steps, st)
		if st.Pass {
			if rate > pass {
				pass, s.Achieved = rate, st.Achieved
			}
		} else if fail == 0 || rate < fail {
			fail = rate
		}
		return st.Pass, nil
	}
	// down halves from rate until a step passes or the rate would go
	// under Min; false: nothing that low met the SLO.
	down := func(rate float64) (bool, error) {
		for rate/2 >= lim.Min {
			rate /= 2
			ok, err := step("ramp", rate)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	}
	bisect := func() error {
		for fail > 0 && pass > 0 && (fail-pass)/pass > lim.Precision {
			if _, err := step("bisect", (pass+fail)/2); err != nil {
				return err
			}
		}
		return nil
	}
	err := func() error {
		rate := lim.Start
		ok, err := step("ramp", rate)
		if err != nil {
			return err
		}
		for ok && rate < lim.Max {
			rate = math.Min(2*rate, lim.Max)
			if ok, err = step("ramp", rate); err != nil {
				return err
			}
		}
		if !ok && pass == 0 {
			if ok, err = down(rate); err != nil || !ok {
				return err // not even the lowest rate met the SLO
			}
		}
		if err := bisect(); err != nil {
			return err
		}
		// One short step that passed by luck (a quiet moment on a shared
		// host) would set the capacity: the rate found is measured once
		// more, and if it fails now, it is the limit and the search goes
		// on below it (down again if nothing below it passed).
		for pass > 0 && fail > 0 {
			found := pass
			ok, err := step("confirm", found)
			if err != nil || ok {
				return err
			}
			pass, fail, s.Achieved = 0, found, 0
			for _, st := range s.Steps {
				if st.Pass && st.Rate < found && st.Rate > pass {
					pass, s.Achieved = st.Rate, st.Achieved
				}
			}
			if pass == 0 {
				if ok, err := down(found); err != nil || !ok {
					return err
				}
			}
			if err := bisect(); err != nil {
				return err
			}
		}
		return nil
	}()
	s.Found, s.Capacity, s.Limit = pass > 0, pass, fail
	if errors.Is(err, errSteps) {
		// The bracket is what it is; the report says the search stopped
		// early, so "not found" is not read as every rate failing.
		s.Error = fmt.Sprintf("stopped early: the %d steps of --max-steps were spent", lim.MaxSteps)
		err = nil
	}
	return s, err
}

var errSteps = errors.New("step budget spent")
