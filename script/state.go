package script

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// State is one client's variables and random source. Not safe for
// concurrent use: one per client. Variables persist from one run of the
// script to the next, as in pgbench.
type State struct {
	script *Script
	r      *rand.Rand
	vals   []value // by slot
}

// NewState returns a fresh client state. r drives the random functions; if
// nil, a randomly seeded source is used. builtins are the automatic
// variables (pgbench sets scale, client_id, random_seed and default_seed);
// entries the script never mentions are ignored, and a \set may overwrite
// them.
func (s *Script) NewState(r *rand.Rand, builtins map[string]int64) *State {
	if r == nil {
		r = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	st := &State{script: s, r: r, vals: make([]value, len(s.vars))}
	for name, v := range builtins {
		if slot, ok := s.slots[name]; ok {
			st.vals[slot] = intValue(v)
		}
	}
	return st
}

// Var returns the current value of a variable as int64, float64, bool or
// nil (null). ok is false if the variable is unset or the script never
// mentions it.
func (st *State) Var(name string) (v any, ok bool) {
	slot, found := st.script.slots[name]
	if !found || st.vals[slot].k == kUnset {
		return nil, false
	}
	return st.vals[slot].any(), true
}

func (st *State) check(step *Step, want StepKind) error {
	if step.script == nil {
		return fmt.Errorf("script: step was not made by Parse")
	}
	if step.script != st.script {
		return fmt.Errorf("script: step from script %q given to a state of script %q", step.script.Name, st.script.Name)
	}
	if step.Kind != want {
		return &Error{Script: step.script.Name, Line: step.Line,
			Msg: fmt.Sprintf("%s step evaluated as %s", step.Kind, want)}
	}
	return nil
}

func undefined(name string) error { return fmt.Errorf("undefined variable %q", name) }

// Set evaluates a \set step and assigns its variable.
func (st *State) Set(step *Step) error {
	if err := st.check(step, StepSet); err != nil {
		return err
	}
	v, err := st.eval(step.expr)
	if err != nil {
		return step.fail(err)
	}
	st.vals[step.slot] = v
	return nil
}

// Sleep evaluates a \sleep step and returns how long to sleep. A negative
// amount sleeps for zero, as pgbench effectively does.
func (st *State) Sleep(step *Step) (time.Duration, error) {
	if err := st.check(step, StepSleep); err != nil {
		return 0, err
	}
	n := step.sleepN
	if step.sleepSlot >= 0 {
		v := st.vals[step.sleepSlot]
		switch v.k {
		case kInt:
			n = v.i
		case kDouble:
			// pgbench reads the variable with atoi(): the integer part.
			t := math.Trunc(v.f)
			if math.IsNaN(t) || t < -0x1p63 || t >= 0x1p63 {
				return 0, step.fail(fmt.Errorf("invalid sleep time %v in variable %q", v.f, st.script.vars[step.sleepSlot]))
			}
			n = int64(t)
		case kUnset:
			return 0, step.fail(undefined(st.script.vars[step.sleepSlot]))
		default:
			return 0, step.fail(fmt.Errorf("invalid sleep time: variable %q is %s", st.script.vars[step.sleepSlot], v.k))
		}
	}
	if n <= 0 {
		return 0, nil
	}
	if n > math.MaxInt64/int64(step.unit) {
		return 0, step.fail(fmt.Errorf("sleep time %d%s out of range", n, unitName(step.unit)))
	}
	return time.Duration(n) * step.unit, nil
}

func unitName(d time.Duration) string {
	for name, u := range sleepUnits {
		if u == d {
			return name
		}
	}
	return ""
}

// AppendArgs appends the values of the SQL step's $1..$n as text to dst and
// returns the extended slice. Each appended element reuses the buffer dst
// already held at that index beyond its length, so passing back the
// previous result truncated to zero (args[:0]) makes the steady state
// allocation-free; the previous values are overwritten. A null value is a
// nil element, for SQL NULL.
func (st *State) AppendArgs(step *Step, dst [][]byte) ([][]byte, error) {
	if err := st.check(step, StepSQL); err != nil {
		return dst, err
	}
	for _, slot := range step.paramSlots {
		v := st.vals[slot]
		switch v.k {
		case kUnset:
			return dst, step.fail(undefined(st.script.vars[slot]))
		case kNull:
			dst = append(dst, nil)
			continue
		}
		var b []byte
		if n := len(dst); n < cap(dst) {
			b = dst[:n+1][n][:0]
		}
		dst = append(dst, v.appendText(b))
	}
	return dst, nil
}

// Literal returns the SQL step's statement with each :var replaced by its
// value as an SQL literal, for the simple protocol.
func (st *State) Literal(step *Step) (string, error) {
	if err := st.check(step, StepSQL); err != nil {
		return "", err
	}
	b := make([]byte, 0, len(step.Text)+8*len(step.refs))
	b = append(b, step.lits[0]...)
	for i, p := range step.refs {
		slot := step.paramSlots[p]
		v := st.vals[slot]
		if v.k == kUnset {
			return "", step.fail(undefined(st.script.vars[slot]))
		}
		b = v.appendLiteral(b)
		b = append(b, step.lits[i+1]...)
	}
	return string(b), nil
}
