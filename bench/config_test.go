package bench

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/routing"
	"github.com/pgbenchx/pgbenchx/workload"
)

func TestValidate(t *testing.T) {
	ok := Default()
	ok.Workload.Strategies = []routing.Strategy{routing.RoundRobin, routing.LagAware}
	// Validating twice (the CLI does, then Run) keeps the label it made.
	for range 2 {
		if err := ok.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	if ok.Output.Label != "round-robin+lag-aware" {
		t.Errorf("label %q", ok.Output.Label)
	}
	tests := []struct {
		flag string
		edit func(*Config)
	}{
		{"duration", func(c *Config) { c.Workload.Duration = 10 * time.Millisecond }},
		{"clients", func(c *Config) { c.Workload.Clients = 0 }},
		{"rate", func(c *Config) { c.Workload.Rate = 0.5 }},
		{"scale", func(c *Config) { c.Workload.Scale = 1 }},
		{"max-tries", func(c *Config) { c.Workload.MaxTries = 11 }},
		{"heartbeat", func(c *Config) { c.Workload.Heartbeat = time.Microsecond }},
		{"query-timeout", func(c *Config) { c.Workload.QueryTimeout = time.Microsecond }},
		{"label", func(c *Config) { c.Output.Label = "a b" }},
		{"strategies", func(c *Config) { c.Workload.Strategies = []routing.Strategy{"fastest"} }},
		{"standby", func(c *Config) { c.Target.StandbyDSNs = []string{"postgres://x@h/db"} }},
		{"name", func(c *Config) { c.Target.Env = "Has Space" }},
		{"lag-fallback", func(c *Config) { c.Workload.LagFallback = "nope" }},
		{"strategies", func(c *Config) {
			c.Workload.Strategies = []routing.Strategy{routing.Random, routing.Random}
		}},
		// Checked against the env the spec builds, before it is built.
		{"weights", func(c *Config) {
			c.Workload.Strategies = []routing.Strategy{routing.Random}
			c.Workload.Weights = map[string]float64{"standby3": 1}
		}},
		{"apply-delay", func(c *Config) { c.Target.Spec.ApplyDelay = map[string]time.Duration{"standby9": time.Second} }},
		{"provider", func(c *Config) { c.Target.Provider = "nosuch" }},
		{"commit", func(c *Config) { c.Workload.Commit = "sometimes" }},
		// 30s measured: a fault at 30s would never happen.
		{"fault", func(c *Config) { c.Faults = []Fault{{At: 30 * time.Second, Action: Kill, Node: "standby2"}} }},
		{"fault", func(c *Config) { c.Faults = []Fault{{At: time.Second, Action: Kill, Node: "standby3"}} }},
		{"fault", func(c *Config) { c.Faults = []Fault{{At: time.Second, Action: Failover, Node: "primary"}} }},
		{"fault", func(c *Config) {
			c.Target.PrimaryDSN = "postgres://x@h/db"
			c.Faults = []Fault{{At: time.Second, Action: Kill, Node: "standby1"}}
		}},
	}
	for _, tt := range tests {
		c := Default()
		tt.edit(&c)
		var bad *input.Error
		if err := c.Validate(); !errors.As(err, &bad) || bad.Flag != tt.flag {
			t.Errorf("%s: err %v, want bad input on --%s", tt.flag, err, tt.flag)
		}
	}
}

func TestFaults(t *testing.T) {
	for _, s := range []string{"5s:kill:standby2", "0s:failover:standby1", "1m30s:freeze:primary", "250ms:thaw:standby1"} {
		f, err := ParseFault(s)
		if err != nil {
			t.Errorf("%s: %v", s, err)
		} else if f.String() != s && s != "1m30s:freeze:primary" {
			t.Errorf("%s reads back as %s", s, f)
		}
	}
	for _, s := range []string{"5s:kill", "5:kill:standby2", "-1s:kill:standby1", "5s:explode:standby1", "5s:kill:", "a:b:c:d"} {
		var bad *input.Error
		if _, err := ParseFault(s); !errors.As(err, &bad) || bad.Flag != "fault" {
			t.Errorf("%s: err %v, want bad input on --fault", s, err)
		}
	}
	// With two strategies the measured time spans both and the warmup
	// between: 2 x 30s + 2s.
	c := Default()
	c.Workload.Strategies = []routing.Strategy{routing.RoundRobin, routing.LagAware}
	c.Faults = []Fault{{At: 61 * time.Second, Action: Restart, Node: "standby1"}}
	if err := c.Validate(); err != nil {
		t.Errorf("a fault in the second strategy: %v", err)
	}
	c.Faults[0].At = 62 * time.Second
	if err := c.Validate(); !input.Is(err) {
		t.Errorf("a fault at the end of the second strategy: %v, want bad input", err)
	}
}

// TestAutoHeartbeat: 10 ms when built-in reads check staleness, the lag
// interval when only query-file reads run (they have no stale-read check).
func TestAutoHeartbeat(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil || c.Workload.Heartbeat != DefaultHeartbeat {
		t.Errorf("built-in reads: heartbeat %s (%v), want %s", c.Workload.Heartbeat, err, DefaultHeartbeat)
	}
	c = Default()
	c.Workload.Mix = nil
	c.Workload.Custom = []workload.CustomQuery{{Name: "q", Weight: 1, SQL: "SELECT 1"}}
	if err := c.Validate(); err != nil || c.Workload.Heartbeat != c.Workload.LagInterval {
		t.Errorf("query-file reads only: heartbeat %s (%v), want the lag interval %s", c.Workload.Heartbeat, err, c.Workload.LagInterval)
	}
	c = Default()
	c.Workload.Heartbeat = 50 * time.Millisecond
	if err := c.Validate(); err != nil || c.Workload.Heartbeat != 50*time.Millisecond {
		t.Errorf("given heartbeat changed to %s (%v)", c.Workload.Heartbeat, err)
	}
}

func TestParseVias(t *testing.T) {
	// What the flag parser hands over for --via 'pgcat=postgres://u:pw1,pw2@h/db' --via 'hap=postgres://u@h:6432/db'.
	vias, err := ParseVias([]string{"pgcat=postgres://u:pw1", "pw2@h/db", "hap=postgres://u@h:6432/db"})
	if err != nil || len(vias) != 2 || vias[0].DSN != "postgres://u:pw1,pw2@h/db" || vias[1].Name != "hap" {
		t.Fatalf("ParseVias: %+v, %v", vias, err)
	}
	for _, bad := range [][]string{{"nodsn"}, {"Bad Name=postgres://h/db"}, {"a=postgres://h/db", "a=postgres://h/db"}, {"x=postgres://u:secret@h:notaport/db"}} {
		_, err := ParseVias(bad)
		if err == nil {
			t.Errorf("ParseVias(%q): no error", bad)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseVias(%q): the password in %q", bad, err)
		}
	}
}
