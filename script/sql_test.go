package script

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func TestSQLVariables(t *testing.T) {
	tests := []struct {
		name   string
		text   string
		sql    []string
		params [][]string
	}{
		{"var used twice reuses $1", "SELECT :a + :b, :a;", []string{"SELECT $1 + $2, $1"}, [][]string{{"a", "b"}}},
		{"cast", "SELECT :id::int, 1::bigint, :x ::text;", []string{"SELECT $1::int, 1::bigint, $2 ::text"}, [][]string{{"id", "x"}}},
		{"quoted", `SELECT ':notavar', ":ident", E'\':no', $$ :no; $$, $f$:no$f$, :yes;`,
			[]string{`SELECT ':notavar', ":ident", E'\':no', $$ :no; $$, $f$:no$f$, $1`}, [][]string{{"yes"}}},
		{"doubled quote", `SELECT 'it''s :no', :v;`, []string{`SELECT 'it''s :no', $1`}, [][]string{{"v"}}},
		{"comments", "-- lead :no;\nSELECT /* :no; /* nested */ :no */ :v -- :no;\n;",
			[]string{"SELECT /* :no; /* nested */ :no */ $1 -- :no;"}, [][]string{{"v"}}},
		{"multiline and two per line", "SELECT\n  :a\nFROM t; SELECT 2;\n\n;;", []string{"SELECT\n  $1\nFROM t", "SELECT 2"}, [][]string{{"a"}, nil}},
		{"no final semicolon", "SELECT :a", []string{"SELECT $1"}, [][]string{{"a"}}},
		{"statement ended by meta-command", "SELECT :a\n\\set a 1\nSELECT 2", []string{"SELECT $1", "SELECT 2"}, [][]string{{"a"}, nil}},
		{"not variables", "SELECT a[1:2], :1, x:=1, $a$b$a$, a$1;", []string{"SELECT a[1:2], :1, x:=1, $a$b$a$, a$1"}, [][]string{nil}},
		{"crlf and continuation", "\\SET a 1 + \\\r\n 2\r\nSELECT :a\r\n  FROM t;\r\n", []string{"SELECT $1\r\n  FROM t"}, [][]string{{"a"}}},
		{"utf8 name", "SELECT :prix_€;", []string{"SELECT $1"}, [][]string{{"prix_€"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.text)
			q := sqlSteps(s)
			if len(q) != len(tt.sql) {
				t.Fatalf("%d statements, want %d", len(q), len(tt.sql))
			}
			for i, st := range q {
				if st.SQL != tt.sql[i] {
					t.Errorf("SQL %d = %q, want %q", i, st.SQL, tt.sql[i])
				}
				if !reflect.DeepEqual(st.Params, tt.params[i]) {
					t.Errorf("Params %d = %q, want %q", i, st.Params, tt.params[i])
				}
			}
		})
	}
}

func TestArgsAndLiteral(t *testing.T) {
	s := mustParse(t, `\set a 5
\set b -2
\set c 1.5
\set n null
\set t true
\set big 1e300 * 1e300
SELECT :a::int + :b, ':notavar', x-:b, :a, :c, :n, :t, :big, "c:ol";
`)
	st := s.NewState(nil, nil)
	run(t, s, st)
	q := sqlSteps(s)[0]
	if want := `SELECT $1::int + $2, ':notavar', x-$2, $1, $3, $4, $5, $6, "c:ol"`; q.SQL != want {
		t.Errorf("SQL = %q, want %q", q.SQL, want)
	}
	args, err := st.AppendArgs(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{[]byte("5"), []byte("-2"), []byte("1.5"), nil, []byte("true"), []byte("Infinity")}
	if !reflect.DeepEqual(args, want) {
		t.Errorf("AppendArgs = %q, want %q", args, want)
	}
	lit, err := st.Literal(q)
	if err != nil {
		t.Fatal(err)
	}
	if want := `SELECT 5::int + -2, ':notavar', x- -2, 5, 1.5, NULL, true, 'Infinity'::double precision, "c:ol"`; lit != want {
		t.Errorf("Literal = %q, want %q", lit, want)
	}

	// Buffers are reused: same backing arrays, new contents.
	prev := &args[0][:1][0]
	if err := st.Set(&s.Steps[0]); err != nil {
		t.Fatal(err)
	}
	args, err = st.AppendArgs(q, args[:0])
	if err != nil || string(args[0]) != "5" || &args[0][:1][0] != prev {
		t.Errorf("AppendArgs did not reuse the buffer: %q, %v", args, err)
	}
	args, _ = st.AppendArgs(q, [][]byte{[]byte("keep")})
	if len(args) != 7 || string(args[0]) != "keep" {
		t.Errorf("AppendArgs must append after existing elements: %q", args)
	}

	// An unset variable is an error naming it.
	s2 := mustParse(t, "SELECT :a, :missing;")
	st2 := s2.NewState(nil, map[string]int64{"a": 1})
	if _, err := st2.AppendArgs(&s2.Steps[0], nil); err == nil || !strings.Contains(err.Error(), `test:1: undefined variable "missing"`) {
		t.Errorf("AppendArgs error = %v", err)
	}
	if _, err := st2.Literal(&s2.Steps[0]); err == nil || !strings.Contains(err.Error(), `undefined variable "missing"`) {
		t.Errorf("Literal error = %v", err)
	}
	// Steps are tied to their script and kind.
	if _, err := st2.AppendArgs(q, nil); err == nil {
		t.Error("AppendArgs accepted a step of another script")
	}
	if err := st.Set(q); err == nil {
		t.Error("Set accepted an SQL step")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"empty", "", "test: no SQL statement in script"},
		{"only comments", "-- nothing\n\n/* here */\n", "no SQL statement"},
		{"only meta", "\\set a 1\n\\sleep 1\n", "no SQL statement"},
		{"gset", "SELECT 1 AS x \\gset\n", `test:1: \gset is not supported`},
		{"aset", "SELECT 1;\n\n\\aset\n", `test:3: \aset is not supported`},
		{"if", "\\if :x > 0\nSELECT 1;\n\\endif\n", `test:1: \if is not supported`},
		{"elif", "SELECT 1;\n\\elif true", `test:2: \elif is not supported`},
		{"else", "SELECT 1;\n\\ELSE", `test:2: \ELSE is not supported`},
		{"endif", "SELECT 1;\n\\endif", `\endif is not supported`},
		{"shell", "SELECT 1;\n\\shell echo hi", `test:2: \shell is not supported`},
		{"setshell", "\\setshell x echo 1\nSELECT 1;", `test:1: \setshell is not supported`},
		{"startpipeline", "\\startpipeline\nSELECT 1;\n\\endpipeline", `test:1: \startpipeline is not supported`},
		{"syncpipeline", "SELECT 1;\n\\syncpipeline", `\syncpipeline is not supported`},
		{"endpipeline", "SELECT 1;\n\\endpipeline", `\endpipeline is not supported`},
		{"setrandom", "\\setrandom aid 1 10\nSELECT 1;", `\setrandom is not supported: it was removed`},
		{"compound", "SELECT 1 \\; SELECT 2;", `test:1: \; is not supported: compound statements`},
		{"unknown command", "SELECT 1;\n\\nosuchcommand", `test:2: invalid command "\nosuchcommand"`},
		{"lone backslash", "SELECT 1;\n\\", `test:2: invalid command`},
		{"unknown function", "SELECT 1;\n\n\\set aid randum(1, 10)", `test:3: \set aid: unknown function "randum" (want random, abs, debug,`},
		{"set no name", "\\set\nSELECT 1;", `test:1: \set: missing variable name`},
		{"set no expr", "\\set i\nSELECT 1;", `test:1: \set i: missing expression`},
		{"set bad name", "\\set . 1\nSELECT 1;", `\set: invalid variable name "."`},
		{"set digit name", "\\set 1x 1\nSELECT 1;", `invalid variable name "1x"`},
		{"set syntax", "\\set i 1 +\nSELECT 1;", `test:1: \set i: syntax error at end of expression`},
		{"set bad char", "\\set i ;\nSELECT 1;", `unexpected character ";"`},
		{"set unbalanced", "\\set i (1 + 2\nSELECT 1;", `expected ), found end of expression`},
		{"set extra paren", "\\set d ln(1.0))\nSELECT 1;", `syntax error at ")"`},
		{"set arg count", "\\set d ln(1.0, 2.0)\nSELECT 1;", `function ln takes 1 argument, got 2`},
		{"set no args", "\\set i greatest()\nSELECT 1;", `function greatest takes at least 1 argument`},
		{"set too many args", "\\set i least(0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16)\nSELECT 1;", `takes 1 to 16 arguments, got 17`},
		{"set hash args", "\\set i hash(1, 2, 3)\nSELECT 1;", `function hash takes 1 to 2 arguments, got 3`},
		{"set case syntax", "\\set i CASE TRUE THEN 1 ELSE 0 END\nSELECT 1;", `expected WHEN after CASE`},
		{"set case no end", "\\set i CASE WHEN TRUE THEN 1\nSELECT 1;", `expected end, found end of expression`},
		{"set chained compare", "\\set b 1 < 2 < 3\nSELECT 1;", `comparisons do not chain`},
		{"set int overflow", "\\set i 9223372036854775808\nSELECT 1;", `bigint constant overflow: 9223372036854775808`},
		{"set int overflow 2", "\\set i 99999999999999999999\nSELECT 1;", `bigint constant overflow`},
		{"set double overflow", "\\set d 1e400\nSELECT 1;", `double constant overflow: 1e400`},
		{"set bare word", "\\set i scale\nSELECT 1;", `syntax error at "scale": a variable is written :scale`},
		{"set function no parens", "\\set d pi\nSELECT 1;", `expected (, found end of expression`},
		{"set bare colon", "\\set i : x\nSELECT 1;", `":" must be followed by a variable name`},
		{"set is what", "\\set b 1 IS 2\nSELECT 1;", `expected NULL, TRUE or FALSE after IS`},
		{"continued line error", "SELECT 1;\n\\set i 1 + \\\n  2 +\nSELECT 1;", `test:2: \set i: syntax error`},
		{"sleep no arg", "\\sleep\nSELECT 1;", `test:1: \sleep: missing argument`},
		{"sleep too many", "\\sleep too many args\nSELECT 1;", `\sleep: too many arguments`},
		{"sleep unit", "\\sleep 1 week\nSELECT 1;", `\sleep: unrecognized time unit "week", must be us, ms or s`},
		{"sleep glued unit", "\\sleep 1week\nSELECT 1;", `unrecognized time unit "week"`},
		{"sleep not int", "\\sleep 1.5 ms\nSELECT 1;", `\sleep: invalid sleep time "1.5", must be an integer`},
		{"sleep word", "\\sleep abc\nSELECT 1;", `invalid sleep time "abc"`},
		{"sleep bad var", "\\sleep :1\nSELECT 1;", `\sleep: invalid variable name "1"`},
		{"unterminated string", "SELECT 1;\nSELECT 'abc;\n", `test:2: unterminated quoted string`},
		{"unterminated ident", "SELECT \"abc;\n", `test:1: unterminated quoted identifier`},
		{"unterminated comment", "SELECT 1;\n/* abc /* */\nSELECT 2;", `test:2: unterminated /* comment`},
		{"unterminated dollar", "SELECT 1;\n\nSELECT $x$ abc $y$;", `test:3: unterminated dollar-quoted string $x$`},
		{"positional param", "SELECT 1;\nSELECT * FROM t\n WHERE id = $1;", `test:3: positional parameter $1 is not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse("test", tt.text)
			if err == nil {
				t.Fatalf("Parse succeeded with %d steps, want error containing %q", len(s.Steps), tt.want)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q, want one line containing %q", msg, tt.want)
			}
		})
	}
}

func TestMissingVars(t *testing.T) {
	s := mustParse(t, "\\set x :y + hash(:z)\n\\sleep :nap ms\nSELECT :x, :w, :scale;")
	builtins := map[string]int64{"scale": 1, "client_id": 0}
	want := []string{"default_seed", "nap", "w", "y", "z"}
	if got := s.MissingVars(builtins); !reflect.DeepEqual(got, want) {
		t.Errorf("MissingVars = %q, want %q", got, want)
	}
}

// BenchmarkEval is the per-transaction hot path of a select-only run: one
// \set with random() and the parameters of one statement.
func BenchmarkEval(b *testing.B) {
	s := mustParse(b, selectOnly)
	st := s.NewState(rand.New(rand.NewPCG(1, 2)), map[string]int64{"scale": 100})
	set, q := &s.Steps[0], &s.Steps[1]
	var args [][]byte
	b.ReportAllocs()
	for b.Loop() {
		if err := st.Set(set); err != nil {
			b.Fatal(err)
		}
		var err error
		if args, err = st.AppendArgs(q, args[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvalTPCB runs all of tpcb-like's meta-commands and parameters.
func BenchmarkEvalTPCB(b *testing.B) {
	s := mustParse(b, tpcbLike)
	st := s.NewState(rand.New(rand.NewPCG(1, 2)), map[string]int64{"scale": 100})
	args := make([][][]byte, len(s.Steps))
	b.ReportAllocs()
	for b.Loop() {
		for i := range s.Steps {
			step := &s.Steps[i]
			var err error
			if step.Kind == StepSet {
				err = st.Set(step)
			} else {
				args[i], err = st.AppendArgs(step, args[i][:0])
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}
