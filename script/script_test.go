package script

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The built-in scripts of pgbench 15, as "pgbench --show-script=NAME"
// prints them.
const (
	tpcbLike = `-- tpcb-like: <builtin: TPC-B (sort of)>
\set aid random(1, 100000 * :scale)
\set bid random(1, 1 * :scale)
\set tid random(1, 10 * :scale)
\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
`
	simpleUpdate = `-- simple-update: <builtin: simple update>
\set aid random(1, 100000 * :scale)
\set bid random(1, 1 * :scale)
\set tid random(1, 10 * :scale)
\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
`
	selectOnly = `-- select-only: <builtin: select only>
\set aid random(1, 100000 * :scale)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
`
)

func mustParse(t testing.TB, text string) *Script {
	t.Helper()
	s, err := Parse("test", text)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return s
}

func sqlSteps(s *Script) []*Step {
	var out []*Step
	for i := range s.Steps {
		if s.Steps[i].Kind == StepSQL {
			out = append(out, &s.Steps[i])
		}
	}
	return out
}

// run executes every meta-command step of the script once, in order.
func run(t testing.TB, s *Script, st *State) {
	t.Helper()
	for i := range s.Steps {
		step := &s.Steps[i]
		var err error
		switch step.Kind {
		case StepSet:
			err = st.Set(step)
		case StepSleep:
			_, err = st.Sleep(step)
		}
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
}

func TestBuiltinScripts(t *testing.T) {
	tests := []struct {
		name   string
		text   string
		kinds  string // one letter per step: s(et), z(sleep), q(uery)
		sql    []string
		params [][]string
	}{
		{
			name: "tpcb-like", text: tpcbLike, kinds: "ssssqqqqqqq",
			sql: []string{
				"BEGIN",
				"UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
				"SELECT abalance FROM pgbench_accounts WHERE aid = $1",
				"UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2",
				"UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2",
				"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)",
				"END",
			},
			params: [][]string{nil, {"delta", "aid"}, {"aid"}, {"delta", "tid"}, {"delta", "bid"}, {"tid", "bid", "aid", "delta"}, nil},
		},
		{
			name: "simple-update", text: simpleUpdate, kinds: "ssssqqqqq",
			sql: []string{
				"BEGIN",
				"UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
				"SELECT abalance FROM pgbench_accounts WHERE aid = $1",
				"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)",
				"END",
			},
			params: [][]string{nil, {"delta", "aid"}, {"aid"}, {"tid", "bid", "aid", "delta"}, nil},
		},
		{
			name: "select-only", text: selectOnly, kinds: "sq",
			sql:    []string{"SELECT abalance FROM pgbench_accounts WHERE aid = $1"},
			params: [][]string{{"aid"}},
		},
	}
	letter := map[StepKind]byte{StepSet: 's', StepSleep: 'z', StepSQL: 'q'}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.text)
			var kinds []byte
			for _, st := range s.Steps {
				kinds = append(kinds, letter[st.Kind])
			}
			if string(kinds) != tt.kinds {
				t.Errorf("steps %s, want %s", kinds, tt.kinds)
			}
			if s.NumSQL() != len(tt.sql) {
				t.Errorf("NumSQL() = %d, want %d", s.NumSQL(), len(tt.sql))
			}
			for i, st := range sqlSteps(s) {
				if st.SQL != tt.sql[i] {
					t.Errorf("SQL %d = %q, want %q", i, st.SQL, tt.sql[i])
				}
				if !reflect.DeepEqual(st.Params, tt.params[i]) {
					t.Errorf("Params %d = %q, want %q", i, st.Params, tt.params[i])
				}
			}
			if s.Steps[1].Line != 3 {
				t.Errorf("second step on line %d, want 3", s.Steps[1].Line)
			}
			if got := s.MissingVars(nil); !reflect.DeepEqual(got, []string{"scale"}) {
				t.Errorf("MissingVars(nil) = %q, want [scale]", got)
			}
			if got := s.MissingVars(map[string]int64{"scale": 1}); got != nil {
				t.Errorf("MissingVars(scale) = %q, want none", got)
			}

			// Every run draws in range and fills every parameter.
			const scale = 7
			st := s.NewState(rand.New(rand.NewPCG(1, 2)), map[string]int64{"scale": scale, "client_id": 3})
			for range 1000 {
				run(t, s, st)
				aid, _ := st.Var("aid")
				if a := aid.(int64); a < 1 || a > 100000*scale {
					t.Fatalf("aid = %d out of [1, %d]", a, 100000*scale)
				}
				if tid, ok := st.Var("tid"); ok && (tid.(int64) < 1 || tid.(int64) > 10*scale) {
					t.Fatalf("tid = %d", tid)
				}
				if d, ok := st.Var("delta"); ok && (d.(int64) < -5000 || d.(int64) > 5000) {
					t.Fatalf("delta = %d", d)
				}
				for _, q := range sqlSteps(s) {
					args, err := st.AppendArgs(q, nil)
					if err != nil || len(args) != len(q.Params) {
						t.Fatalf("AppendArgs(%q) = %q, %v", q.SQL, args, err)
					}
				}
			}
		})
	}
}

// Examples from the \set and \sleep sections of pgbench's documentation.
func TestDocExamples(t *testing.T) {
	tests := []struct {
		script string
		vars   map[string]int64 // builtins
		want   map[string]any   // nil: only check it runs
	}{
		{`\set ntellers 10 * :scale`, map[string]int64{"scale": 3}, map[string]any{"ntellers": int64(30)}},
		{`\set aid (1021 * random(1, 100000 * :scale)) % (100000 * :scale) + 1`, map[string]int64{"scale": 2}, nil},
		{"\\set x 7\n\\set y 21\n\\set divx CASE WHEN :x <> 0 THEN :y/:x ELSE null END", nil, map[string]any{"divx": int64(3)}},
		{"\\set x 0\n\\set y 21\n\\set divx CASE WHEN :x <> 0 THEN :y/:x ELSE null END", nil, map[string]any{"divx": nil}},
		{`\set i debug(abs(-17))`, nil, map[string]any{"i": int64(17)}},
		{`\set d debug(5432.1)`, nil, map[string]any{"d": 5432.1}},
		{`\set d double(5432)`, nil, map[string]any{"d": 5432.0}},
		{`\set d exp(1.0)`, nil, map[string]any{"d": 2.718281828459045}},
		{`\set i greatest(5, 4, 3, 2)`, nil, map[string]any{"i": int64(5)}},
		{`\set i hash(10, 5432)`, nil, map[string]any{"i": int64(-5817877081768721676)}},
		{`\set i hash_fnv1a(10, 5432)`, nil, map[string]any{"i": int64(-7793829335365542153)}},
		{`\set i hash_murmur2(10, 5432)`, nil, map[string]any{"i": int64(-5817877081768721676)}},
		{`\set i int(5.4 + 3.8)`, nil, map[string]any{"i": int64(9)}},
		{`\set d least(5, 4, 3, 2.1)`, nil, map[string]any{"d": 2.1}},
		{`\set d ln(2.718281828459045)`, nil, map[string]any{"d": 1.0}},
		{`\set i mod(54, 32)`, nil, map[string]any{"i": int64(22)}},
		{`\set d pi()`, nil, map[string]any{"d": 3.14159265358979323846}},
		{`\set d pow(2.0, 10)`, nil, map[string]any{"d": 1024.0}},
		{`\set d power(2.0, 10)`, nil, map[string]any{"d": 1024.0}},
		{`\set d sqrt(2.0)`, nil, map[string]any{"d": 1.4142135623730951}},
		{"\\set size 1000000\n\\set r random_zipfian(1, :size, 1.07)\n\\set k 1 + permute(:r, :size)", map[string]int64{"default_seed": 42}, nil},
		{`\set x random_exponential(1, 10, 3.0)`, nil, nil},
		{`\set x random_gaussian(1, 10, 2.5)`, nil, nil},
		{`\set x random_zipfian(1, 10, 2.5)`, nil, nil},
		// operator table
		{`\set b 5 < 4`, nil, map[string]any{"b": false}},
		{`\set b true AND false`, nil, map[string]any{"b": false}},
		{`\set b true OR false`, nil, map[string]any{"b": true}},
		{`\set b NOT false`, nil, map[string]any{"b": true}},
		{`\set i 1 << 4`, nil, map[string]any{"i": int64(16)}},
		{`\set i 8 >> 2`, nil, map[string]any{"i": int64(2)}},
		{`\set i 1 & 3`, nil, map[string]any{"i": int64(1)}},
		{`\set i 1 | 2`, nil, map[string]any{"i": int64(3)}},
		{`\set i 1 # 3`, nil, map[string]any{"i": int64(2)}},
		{`\set i ~ 1`, nil, map[string]any{"i": int64(-2)}},
		{`\set i 3 % 2`, nil, map[string]any{"i": int64(1)}},
		{`\set i 7 / 2`, nil, map[string]any{"i": int64(3)}},
		{`\set d 5.0 - 3`, nil, map[string]any{"d": 2.0}},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			s := mustParse(t, tt.script+"\nSELECT 1;\n")
			st := s.NewState(rand.New(rand.NewPCG(3, 4)), tt.vars)
			run(t, s, st)
			for name, want := range tt.want {
				got, ok := st.Var(name)
				if want == nil && ok && got != nil || want != nil && (!ok || got != want) {
					t.Errorf("%s = %#v (set %v), want %#v", name, got, ok, want)
				}
			}
		})
	}
}

func TestSleep(t *testing.T) {
	tests := []struct {
		line string
		want time.Duration
	}{
		{`\sleep 10 ms`, 10 * time.Millisecond},
		{`\sleep 10ms`, 10 * time.Millisecond},
		{`\sleep 100 us`, 100 * time.Microsecond},
		{`\sleep 2`, 2 * time.Second},
		{`\sleep 2 S`, 2 * time.Second},
		{`\SLEEP 3 MS`, 3 * time.Millisecond},
		{`\sleep 0 s`, 0},
		{`\sleep -5 ms`, 0},
		{`\sleep :one ms`, time.Millisecond},
		{`\sleep :zero`, 0},
		{`\sleep :half s`, 0}, // pgbench reads 0.5 with atoi()
		{`\sleep :d us`, 1500 * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			s := mustParse(t, "\\set one 1.0\n\\set zero 0\n\\set half 0.5\n\\set d 1500\n"+tt.line+"\nSELECT 1")
			st := s.NewState(nil, nil)
			run(t, s, st)
			got, err := st.Sleep(&s.Steps[4])
			if err != nil || got != tt.want {
				t.Errorf("Sleep = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	s := mustParse(t, "\\sleep :nap ms\nSELECT 1")
	if _, err := s.NewState(nil, nil).Sleep(&s.Steps[0]); err == nil || !strings.Contains(err.Error(), `test:1: \sleep: undefined variable "nap"`) {
		t.Errorf("Sleep with unset variable: %v", err)
	}
}
