package report

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestParseGates(t *testing.T) {
	for _, c := range []struct {
		in     string
		metric string
		op     string
		value  float64
	}{
		{"p99<5ms", "p99", "<", 5},
		{"p99<5", "p99", "<", 5},
		{" P50 <= 0.5s ", "p50", "<=", 500},
		{"p999<800us", "p999", "<", 0.8},
		{"max!=60s", "max", "!=", 60000},
		{"p90>=1.5ms", "p90", ">=", 1.5},
		{"stale<1%", "stale", "<", 1},
		{"stale<0.01", "stale", "<", 1},
		{"errors=0", "errors", "=", 0},
		{"errors==0", "errors", "=", 0},
		{"retries<10", "retries", "<", 10},
		{"qps>=1000", "qps", ">=", 1000},
		{"scaling>1.5", "scaling", ">", 1.5},
		{"scaling>1.5x", "scaling", ">", 1.5},
		{"lag_ms<100", "lag_ms", "<", 100},
		{"lag_ms<2s", "lag_ms", "<", 2000},
		{"lag_bytes<16MB", "lag_bytes", "<", 16e6},
		{"lag_bytes<64kB", "lag_bytes", "<", 64e3},
		{"lag_bytes<1MiB", "lag_bytes", "<", 1 << 20},
	} {
		g, err := ParseGates(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if len(g) != 1 || g[0].Metric != c.metric || g[0].Op != c.op || math.Abs(g[0].Value-c.value) > 1e-9 || g[0].Text != strings.TrimSpace(c.in) {
			t.Errorf("%q = %+v, want %s %s %v", c.in, g, c.metric, c.op, c.value)
		}
	}
	g, err := ParseGates("p99<5ms,stale<1%,errors=0,scaling>1.5,")
	if err != nil || len(g) != 4 {
		t.Errorf("the documented example: %d gates, %v", len(g), err)
	}
}

func TestParseGatesRejects(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"p95<5ms", "unknown metric"},
		{"latency<5ms", "p50, p90, p99"},
		{"p99 5ms", "OP one of"},
		{"p99=>5ms", "p99 takes"},
		{"p99<5parsecs", "ms (default), s or us"},
		{"p99<", "p99 takes"},
		{"p99<-1ms", "p99 takes"},
		{"stale<5", "fraction from 0 to 1"},
		{"errors=0.5", "whole number"},
		{"lag_bytes<3furlongs", "KiB"},
		{"", "at least one condition"},
		{" , ", "at least one condition"},
	} {
		_, err := ParseGates(c.in)
		var ie *InputError
		if !errors.As(err, &ie) || ie.Flag != "fail-if" {
			t.Errorf("%q: err %v, want an *InputError for fail-if", c.in, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
			t.Errorf("%q: %q, want one line mentioning %q", c.in, msg, c.want)
		}
		if c.in != "" && !strings.Contains(msg, strings.TrimSpace(strings.Split(c.in, ",")[0])) {
			t.Errorf("%q: %q does not name the condition", c.in, msg)
		}
	}
}

func TestCheckRun(t *testing.T) {
	r := fixture()
	gates, err := ParseGates("p99<100ms,p99<1ms,stale<10%,stale<1%,errors=0,qps>1,lag_ms<1s,lag_bytes<1kB,scaling>1.5")
	if err != nil {
		t.Fatal(err)
	}
	v := CheckRun(r, gates)
	got := map[string]bool{}
	for _, x := range v {
		got[x.Gate.Text+" @ "+x.Scope] = x.Pass
	}
	want := map[string]bool{
		"p99<100ms @ round-robin": true,
		"p99<1ms @ round-robin":   false,
		"stale<10% @ round-robin": true,  // 20 of 700 checked
		"stale<1% @ round-robin":  false, // ... is 2.86%
		"errors=0 @ round-robin":  false, // 3 errors on standby2
		"qps>1 @ round-robin":     true,
		"lag_ms<1s @ round-robin": true,
		// standby2's 4096 bytes behind is the worst sample.
		"lag_bytes<1kB @ round-robin": false,
	}
	for k, pass := range want {
		if p, ok := got[k]; !ok || p != pass {
			t.Errorf("%s: pass=%v (reported: %v), want %v", k, p, ok, pass)
		}
	}
	var scaling *Verdict
	for i := range v {
		if v[i].Gate.Metric == "scaling" {
			scaling = &v[i]
		}
	}
	if scaling == nil || !scaling.Pass || !strings.Contains(scaling.Scope, "n/a") {
		t.Errorf("scaling on one run: %+v, want a passing n/a verdict", scaling)
	}
	// Every strategy gets its own verdict per gate.
	if n := len(r.Strategies)*8 + 1; len(v) != n {
		t.Errorf("%d verdicts, want %d", len(v), n)
	}

	var b bytes.Buffer
	if err := WriteVerdicts(&b, v); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, line := range []string{
		"FAIL  p99<1ms        round-robin: ",
		"PASS  p99<100ms      round-robin: ",
		"FAIL  stale<1%       round-robin: 2.86%",
		"FAIL  lag_bytes<1kB  round-robin: 4.0 KiB",
		"PASS  scaling>1.5    n/a: ",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("verdicts lack %q:\n%s", line, out)
		}
	}
}

func TestComparisonCheck(t *testing.T) {
	c, err := Compare([]Sample{scaled(1, 100), scaled(2, 160)})
	if err != nil {
		t.Fatal(err)
	}
	gates, err := ParseGates("scaling>1.5,scaling>1.7,qps>120")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, x := range c.Check(gates) {
		got[x.Gate.Text+" @ "+x.Scope] = x.Pass
	}
	want := map[string]bool{
		"scaling>1.5 @ round-robin, 2 vs 1 standbys": true,
		"scaling>1.7 @ round-robin, 2 vs 1 standbys": false,
		"qps>120 @ round-robin, 1 standby":           false,
		"qps>120 @ round-robin, 2 standbys":          true,
	}
	if len(got) != len(want) {
		t.Errorf("verdicts %v, want %v", got, want)
	}
	for k, pass := range want {
		if p, ok := got[k]; !ok || p != pass {
			t.Errorf("%s: pass=%v (reported: %v), want %v", k, p, ok, pass)
		}
	}
}
