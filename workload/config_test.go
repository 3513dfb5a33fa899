package workload

import (
	"reflect"
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/routing"
	"github.com/pgbenchx/pgbenchx/script"
)

// TestRecordKeepsEverySetting fills every field of a Config and checks
// that every field of the record is set: a setting added to one and not
// carried to the other (as QueryFile once was) fails here.
func mustScript(t *testing.T) *script.Script {
	sc, err := script.Parse("x", "SELECT 1;")
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestRecordKeepsEverySetting(t *testing.T) {
	c := Config{
		Strategies: []routing.Strategy{routing.LagAware}, Duration: time.Second, Warmup: time.Second, Clients: 2, Rate: 10,
		Mix: []Weighted{{"point", 1}}, QueryFile: "q.sql", QueryFileSHA256: "abc", Scale: 100, WriteRows: 1, WriteBatch: 1,
		WriteRate: 1, ReadPrimary: true, MaxTries: 2, EjectFor: time.Second, MaxLagBytes: 1, MaxLagTime: time.Second,
		LagFallback: routing.FallbackError, Weights: map[string]float64{"standby1": 1}, LagInterval: time.Second,
		QueryTimeout: time.Second, Heartbeat: time.Second, SessionWrites: 3, Commit: "remote_apply", SlotWarn: 1 << 30,
		StartAt: time.Now(), Protocol: "extended", ViaProtocol: "simple", Vias: []Via{{Name: "pgpool", DSN: "postgres://u:pw@127.0.0.1:1/db"}},
		Scripts: []ScriptFile{{Path: "x.sql", Weight: 1, Script: mustScript(t)}},
	}
	r := reflect.ValueOf(c.Record())
	for i := range r.NumField() {
		// The faults and a matrix's mode are the run's (package bench),
		// not the workload's.
		if name := r.Type().Field(i).Name; name == "Faults" || name == "Mode" {
			continue
		}
		if r.Field(i).IsZero() {
			t.Errorf("metrics.Config.%s is not set from the workload's Config", r.Type().Field(i).Name)
		}
	}
}
