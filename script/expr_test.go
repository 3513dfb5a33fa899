package script

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// exprPreamble defines the variables the expression tests use, standing in
// for the -D options of pgbench's own expression test.
const exprPreamble = `\set foo -10.1
\set f false
\set t true
\set n null
\set d1 false
\set n0 null
\set zy 0
\set minint -9223372036854775808
\set maxint 9223372036854775807
\set h0 hash(10, 5432)
`

var exprBuiltins = map[string]int64{"scale": 1, "client_id": 0, "random_seed": 5432, "default_seed": 977}

// evalExpr evaluates "\set r EXPR" after exprPreamble.
func evalExpr(t *testing.T, expr string) (any, error) {
	t.Helper()
	s, err := Parse("test", exprPreamble+`\set r `+expr+"\nSELECT 1")
	if err != nil {
		t.Fatalf("Parse(%q): %v", expr, err)
	}
	st := s.NewState(rand.New(rand.NewPCG(5, 6)), exprBuiltins)
	last := len(s.Steps) - 2
	for i := range last {
		if err := st.Set(&s.Steps[i]); err != nil {
			t.Fatalf("preamble: %v", err)
		}
	}
	if err := st.Set(&s.Steps[last]); err != nil {
		return nil, err
	}
	v, _ := st.Var("r")
	return v, nil
}

func TestExpressions(t *testing.T) {
	tests := []struct {
		expr string
		want any // int64, float64 (compared to 1e-12 relative), bool or nil
	}{
		// From pgbench's own expression test (001_pgbench_with_server.pl).
		{"abs(-4)", int64(4)},
		{"greatest(5, 4, 3, 2)", int64(5)},
		{"11 + least(-5, -4, -3, -2)", int64(6)},
		{"int(7.3)", int64(7)},
		{"17 / (4|1) + ( 4 + (7 >> 2))", int64(8)},
		{"- (3 * 4 - (-(~ 1) + -(~ 0))) / -1 + 3 % -1", int64(9)},
		{"10 + (0 + 0 * 0 - 0 / 1)", int64(10)},
		{"10 + (0 + 0 * 0 - 0 / 1) + :scale", int64(11)},
		{"64 % (((2 + 1 * 2 + (1 # 2) | 4 * (2 & 11)) - (1 << 2)) + 2)", int64(12)},
		{"sqrt(+1.5 * 2.0) * abs(-0.8E1)", math.Sqrt(3) * 8},
		{"double(1 + 1) * (-75.0 / :foo)", 2 * (-75.0 / -10.1)},
		{"pi() * 4.9", math.Pi * 4.9},
		{"greatest(4, 2, -1.17) * 4.0 * Ln(Exp(1.0))", 16.0},
		{"least(-5.18, .0E0, 1.0/0) * -3.3", -5.18 * -3.3},
		{"pow(-3,3)", -27.0},
		{"pow(2.0,10)", 1024.0},
		{"pow(0,0)", 1.0},
		{"pow(0.0,0.0)", 1.0},
		{"pow(-2,-3)", -0.125},
		{"pow(-2.0,-3.0)", -0.125},
		{"power(-5.0,-5.0)", -0.00032},
		{"pow(9223372036854775807, 2)", 8.507059173023462e+37},
		{"pow(10,30)", 1e30},
		{"1.0 = 0.0 and 1.0 != 0.0", false},
		{"0 = 1 Or 1.0 = 1", true},
		{"case when 0 < 1 then 32 else 0 end", int64(32)},
		{"case when true then 33 else 0 end", int64(33)},
		{"case when false THEN -1 when 1 = 1 then 13 + 19 + 2.0 end", 34.0},
		{"case when (1 > 0) and (1 >= 0) and (0 < 1) and (0 <= 1) and (0 != 1) and (0 = 0) and (0 <> 1) then 35 else 0 end", int64(35)},
		{"CASE WHEN (1.0 > 0.0) AND (1.0 >= 0.0) AND (0.0 < 1.0) AND (0.0 <= 1.0) AND (0.0 != 1.0) AND (0.0 = 0.0) AND (0.0 <> 1.0) AND (0.0 = 0.0) THEN 36 ELSE 0 END", int64(36)},
		{"CASE WHEN NOT FALSE THEN 3 * 12.3333334 END", 3 * 12.3333334},
		{"case when false then 0 when 1-1 <> 0 then 1 else 38 end", int64(38)},
		{"10 + mod(13 * 7 + 12, 13) - mod(-19 * 11 - 17, 19)", int64(39)},
		{"NOT (0 > 1) AND (1 <= 1) AND NOT (0 >= 1) AND (0 < 1) AND NOT (false and true) AND (false OR TRUE) AND (NOT :f) AND (NOT FALSE) AND NOT (NOT TRUE)", true},
		{"NULL + NULL * exp(NULL)", nil},
		{":n0", nil},
		{"NOT (:n0 IS NOT NULL OR :d1 IS NULL)", true},
		{":n0 IS NULL AND :d1 IS NOT NULL AND :d1 NOTNULL", true},
		{":n0 ISNULL AND NOT :n0 IS TRUE AND :n0 IS NOT FALSE", true},
		{"CASE WHEN :n IS NULL THEN 46 ELSE NULL END", int64(46)},
		{":n IS NULL AND NOT :f AND :t", true},
		{"CASE WHEN 1 THEN TRUE END AND CASE WHEN 1.0 THEN TRUE END AND CASE WHEN :n THEN NULL ELSE TRUE END", true},
		{"hash(10, 5432)", int64(-5817877081768721676)},
		{":h0 = hash_murmur2(10, 5432)", true},
		{"hash_fnv1a(10, 5432)", int64(-7793829335365542153)},
		{"hash(10) = hash(10, :default_seed)", true},
		{"case when :zy = 0 then -1 else (1 / :zy) end", int64(-1)},
		{"case when :zy = 0 or (1 / :zy) < 0 then -1 else (1 / :zy) end", int64(-1)},
		{"case when :zy > 0 and (1 / :zy) < 0 then (1 / :zy) else 1 end", int64(1)},
		{":scale", int64(1)},
		{":client_id", int64(0)},
		{":random_seed", int64(5432)},
		{"-9223372036854775808", int64(math.MinInt64)},
		{"-(:minint + 1)", int64(math.MaxInt64)},

		// Precedence, from pgbench's grammar.
		{"1 + 2 * 3", int64(7)},
		{"(1 + 2) * 3", int64(9)},
		{"-2 * 3", int64(-6)},
		{"- 2 - 3", int64(-5)},
		{"~ 1 + 2", int64(-4)}, // ~ has the bitwise operators' precedence
		{"~1 | 2", int64(-2)},
		{"1 + 2 << 1", int64(6)},
		{"1 << 2 + 1", int64(8)},
		{"1 | 2 = 3", true},
		{"NOT 1 = 2", true},
		{"NOT true AND false", false},
		{"true OR false AND false", true},
		{"true AND false OR true", true},
		{"1 = 1 IS TRUE", true},
		{"NOT NOT true", true},
		{"1 < 2 AND 2 < 3", true},

		// Integer versus double arithmetic.
		{"7 / 2", int64(3)},
		{"-7 / 2", int64(-3)},
		{"7 / 2.0", 3.5},
		{"5 / 2 * 2.0", 4.0},
		{"-7 % 3", int64(-1)},
		{"7 % -3", int64(1)},
		{"7.5 % 2", int64(0)}, // % is integer: 7.5 rounds to 8
		{"1e3", 1000.0},
		{".5", 0.5},
		{"1.", 1.0},
		{"2 > 1", true},
		{"2 >= 2", true},
		{"1 != 1", false},
		{"1 <> 2", true},
		{"1 = 1.0", true},
		{"greatest(1, 2.5)", 2.5},
		{"least(3, 2)", int64(2)},
		{"abs(-2.5)", 2.5},
		{"int(2.5)", int64(2)}, // rint: half to even
		{"int(3.5)", int64(4)},
		{"int(-2.5)", int64(-2)},
		{"double(3) / 2", 1.5},
		{"9223372036854775807 + 0", int64(math.MaxInt64)},
		{"-9223372036854775807 - 1", int64(math.MinInt64)},
		{":minint % -1", int64(0)},
		{"1 << 64", int64(0)},
		{"-1 >> 70", int64(-1)},

		// Null and booleans.
		{"CASE WHEN false THEN 1 END", nil},
		{"CASE WHEN null THEN 1 ELSE 2 END", int64(2)},
		{"null IS NULL", true},
		{"1 ISNULL", false},
		{"1 NOTNULL", true},
		{"1 IS TRUE", false},
		{"null AND false", nil}, // pgbench, unlike SQL, stops at a null left operand
		{"false AND null", false},
		{"true OR null", true},
		{"false OR null", nil},
		{"null + 1", nil},
		{"debug(null)", nil},
		{"hash(null)", nil},
		{"random(null, 10)", nil},
		{"CaSe WhEn TRUE then 1 END", int64(1)},
		{"permute(0, 2, 5431) = 0 and permute(1, 2, 5431) = 1 and permute(0, 2, 5433) = 1 and permute(1, 2, 5433) = 0", true},
		{"permute(:zy, 1)", int64(0)},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			got, err := evalExpr(t, tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			if w, ok := tt.want.(float64); ok {
				g, ok := got.(float64)
				if !ok || math.Abs(g-w) > 1e-12*math.Abs(w) {
					t.Errorf("= %#v, want %#v", got, w)
				}
				return
			}
			if got != tt.want {
				t.Errorf("= %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestExpressionErrors(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"1/0", "division by zero"},
		{"1 % 0", "division by zero"},
		{"mod(1, 0)", "division by zero"},
		{":minint / -1", "bigint div out of range"},
		{"(1<<62) + (1<<62)", "bigint add out of range"},
		{"0 - (1<<62) - (1<<62) - (1<<62)", "bigint sub out of range"},
		{"2 * (1<<62)", "bigint mul out of range"},
		{":minint * -1", "bigint mul out of range"},
		{"-1 * :minint", "bigint mul out of range"},
		{"-:minint", "bigint sub out of range"},
		{"abs(:minint)", "bigint abs out of range"},
		{"int(1E32)", "double to int overflow for 100000000000000005366162204393472.000000"},
		{"int(0.0 / 0)", "double to int overflow"},
		{":nosuchvariable", `undefined variable "nosuchvariable"`},
		{"1 + :scale * :nope", `undefined variable "nope"`},
		{"random(5,3)", "empty range given to random"},
		{"random(:minint, :maxint)", "random range is too large"},
		{"random(0, :maxint)", "random range is too large"},
		{"random_gaussian(0, 10, 1.0)", "gaussian parameter must be at least 2.000000 (not 1.000000)"},
		{"random_exponential(0, 10, 0.0)", "exponential parameter must be greater than zero (not 0.000000)"},
		{"random_exponential(0, 10, -1)", "exponential parameter must be greater than zero"},
		{"random_zipfian(0, 10, 1)", "zipfian parameter must be in range [1.001, 1000] (not 1.000000)"},
		{"random_zipfian(0, 10, 1000000)", "zipfian parameter must be in range [1.001, 1000]"},
		{"random_zipfian(10, 0, 2)", "empty range given to random"},
		{"NOT 0.0", "cannot coerce double to boolean"},
		{"1 AND true", "cannot coerce int to boolean"},
		{"TRUE + 2", "cannot coerce boolean to int"},
		{"true = true", "cannot coerce boolean to int"},
		{"ln(TRUE)", "cannot coerce boolean to double"},
		{"random(FALSE, TRUE)", "cannot coerce boolean to int"},
		{"permute(1, 0)", "permute size parameter must be greater than zero"},
		{"CASE WHEN true THEN 1/0 ELSE 1 END", "division by zero"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			got, err := evalExpr(t, tt.expr)
			if err == nil {
				t.Fatalf("= %#v, want error %q", got, tt.want)
			}
			want := `test:11: \set r: ` + tt.want
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q, want %q", err, want)
			}
		})
	}

	// hash() without a seed reads :default_seed, which the caller provides.
	s := mustParse(t, "\\set h hash(1)\nSELECT 1")
	if err := s.NewState(nil, nil).Set(&s.Steps[0]); err == nil || !strings.Contains(err.Error(), `undefined variable "default_seed"`) {
		t.Errorf("hash without default_seed: %v", err)
	}
}

// A \set may overwrite a builtin, and variables persist across runs.
func TestStatePersistence(t *testing.T) {
	s := mustParse(t, "\\set scale :scale * 2\n\\set n :n + 1\nSELECT :scale, :n")
	st := s.NewState(nil, map[string]int64{"scale": 3, "n": 0, "unused": 9})
	for range 3 {
		run(t, s, st)
	}
	if v, _ := st.Var("scale"); v != int64(24) {
		t.Errorf("scale = %v, want 24", v)
	}
	if v, _ := st.Var("n"); v != int64(3) {
		t.Errorf("n = %v, want 3", v)
	}
	if _, ok := st.Var("unused"); ok {
		t.Error("a builtin the script never mentions should not be visible")
	}
	args, err := st.AppendArgs(&s.Steps[2], nil)
	if err != nil || string(args[0]) != "24" || string(args[1]) != "3" {
		t.Errorf("AppendArgs = %q, %v", args, err)
	}
	// Other clients are unaffected.
	if v, _ := s.NewState(nil, map[string]int64{"scale": 3}).Var("scale"); v != int64(3) {
		t.Errorf("fresh state scale = %v, want 3", v)
	}
}
