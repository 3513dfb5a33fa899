package script

import (
	"fmt"
	"sort"
	"time"
)

// StepKind says what a Step does.
type StepKind int

const (
	// StepSet is a \set meta-command: evaluate with State.Set.
	StepSet StepKind = iota + 1
	// StepSleep is a \sleep meta-command: evaluate with State.Sleep.
	StepSleep
	// StepSQL is an SQL statement: get its parameters with State.AppendArgs
	// (extended protocol) or its text with State.Literal (simple protocol).
	StepSQL
)

func (k StepKind) String() string {
	switch k {
	case StepSet:
		return "set"
	case StepSleep:
		return "sleep"
	case StepSQL:
		return "sql"
	}
	return fmt.Sprintf("StepKind(%d)", int(k))
}

// Script is a parsed pgbench script. It is immutable once parsed, so all
// clients may share it.
type Script struct {
	Name  string
	Steps []Step // in file order
	Text  string // the script as given, for the record

	vars     []string       // variable slot -> name
	slots    map[string]int // name -> slot
	assigned []bool         // slot is the target of some \set
	nsql     int
}

// Step is one statement or meta-command of a Script.
type Step struct {
	Kind StepKind
	Line int    // 1-based line where the step starts
	Text string // the step as written (SQL with its :vars, or the meta-command)

	// SQL is, for StepSQL, the statement with its :vars replaced by $1..$n
	// in order of first appearance; a variable used twice reuses its $n.
	SQL string
	// Params names the variable behind each of $1..$n of SQL.
	Params []string
	// Var is, for StepSet, the variable assigned.
	Var string

	script *Script

	// StepSet
	slot int
	expr *node

	// StepSleep
	sleepN    int64
	sleepSlot int // -1 when the amount is the constant sleepN
	unit      time.Duration

	// StepSQL: Text is lits[0] :var lits[1] :var ... lits[n]; refs[i] is the
	// index into paramSlots of the i-th reference.
	lits       []string
	refs       []int
	paramSlots []int
}

// NumSQL reports how many SQL steps the script has.
func (s *Script) NumSQL() int { return s.nsql }

// MissingVars lists the variables the script reads that no \set assigns and
// builtins does not provide, sorted. They would fail at run time, so a
// caller can refuse the script before connecting anywhere.
func (s *Script) MissingVars(builtins map[string]int64) []string {
	var out []string
	for slot, name := range s.vars {
		if s.assigned[slot] {
			continue
		}
		if _, ok := builtins[name]; ok {
			continue
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Error is a parse or run-time error located in a script.
type Error struct {
	Script string
	Line   int
	Msg    string
}

func (e *Error) Error() string {
	if e.Line <= 0 {
		return e.Script + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d: %s", e.Script, e.Line, e.Msg)
}

// fail wraps a run-time failure of the step with its location, naming the
// command for meta-commands since a line may not be enough to spot it.
func (st *Step) fail(err error) error {
	msg := err.Error()
	switch st.Kind {
	case StepSet:
		msg = `\set ` + st.Var + ": " + msg
	case StepSleep:
		msg = `\sleep: ` + msg
	}
	return &Error{Script: st.script.Name, Line: st.Line, Msg: msg}
}
