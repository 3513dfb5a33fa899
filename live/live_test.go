package live

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/pgbenchx/pgbenchx/metrics"
)

func listen(t *testing.T) *Exporter {
	t.Helper()
	e, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return e
}

var client = &http.Client{Timeout: 5 * time.Second}

// scrape fetches /metrics and parses it as Prometheus would.
func scrape(t *testing.T, e *Exporter) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := fetch(e)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// fetch is scrape for goroutines other than the test's, which must not
// call t.Fatal.
func fetch(e *Exporter) (map[string]*dto.MetricFamily, error) {
	resp, err := client.Get("http://" + e.Addr() + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET /metrics: %s\n%s", resp.Status, b)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	return fams, nil
}

// value is the sample of family name whose labels include want, and
// whether there is one; more than one match is a test bug.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	t.Helper()
	f := fams[name]
	if f == nil {
		return 0, false
	}
	var found []float64
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			if v, ok := got[want[i]]; !ok || v != want[i+1] {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			found = append(found, m.GetCounter().GetValue())
		case m.Gauge != nil:
			found = append(found, m.GetGauge().GetValue())
		default:
			t.Fatalf("%s: neither counter nor gauge", name)
		}
	}
	switch len(found) {
	case 0:
		return 0, false
	case 1:
		return found[0], true
	}
	t.Fatalf("%s%v: %d samples match", name, want, len(found))
	return 0, false
}

func mustValue(t *testing.T, fams map[string]*dto.MetricFamily, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := value(t, fams, name, labels...)
	if !ok {
		t.Errorf("%s%v missing", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func mustAbsent(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) {
	t.Helper()
	if got, ok := value(t, fams, name, labels...); ok {
		t.Errorf("%s%v = %v, want no sample", name, labels, got)
	}
}

func mustType(t *testing.T, fams map[string]*dto.MetricFamily, name string, want dto.MetricType) {
	t.Helper()
	if f := fams[name]; f == nil || f.GetType() != want {
		t.Errorf("%s: type %v, want %v", name, f.GetType(), want)
	}
}

var cluster = []Node{{"primary", "primary"}, {"standby1", "standby"}, {"standby2", "standby"}}

func TestLabelsBeforeFirstTick(t *testing.T) {
	e := listen(t)
	e.SetVersion("v1.2.3")
	e.Nodes(cluster)
	e.Phase("read round-robin")
	e.Strategy("round-robin")

	fams := scrape(t, e)
	mustValue(t, fams, 1, "pgbenchx_build_info", "version", "v1.2.3")
	for _, n := range cluster {
		mustValue(t, fams, 1, "pgbenchx_node_info", "node", n.Name, "role", n.Role)
		for _, name := range []string{"pgbenchx_reads_total", "pgbenchx_read_errors_total", "pgbenchx_stale_reads_total"} {
			mustValue(t, fams, 0, name, "strategy", "round-robin", "node", n.Name)
		}
		// Nothing is known of lag before the sampler's first round.
		mustAbsent(t, fams, "pgbenchx_replica_lag_bytes", "node", n.Name)
		mustAbsent(t, fams, "pgbenchx_replica_lag_seconds", "node", n.Name)
		mustAbsent(t, fams, "pgbenchx_slot_retained_bytes", "node", n.Name)
	}
	mustValue(t, fams, 0, "pgbenchx_failed_reads_total", "strategy", "round-robin")
	mustAbsent(t, fams, "pgbenchx_read_latency_seconds")
	mustAbsent(t, fams, "pgbenchx_reads_per_second")
	mustValue(t, fams, 1, "pgbenchx_phase", "phase", "read round-robin")

	// The private registry carries the Go and process collectors, and
	// nothing leaked into the global one.
	if fams["go_goroutines"] == nil {
		t.Error("go_goroutines missing")
	}
}

func TestNodesBeforeStrategy(t *testing.T) {
	e := listen(t)
	e.Nodes(cluster)
	fams := scrape(t, e)
	mustValue(t, fams, 1, "pgbenchx_node_info", "node", "standby2", "role", "standby")
	mustValue(t, fams, 1, "pgbenchx_build_info", "version", "unknown")
	// The first tick names the strategy: every node's counters appear
	// with it, including nodes that read nothing that second.
	e.Tick("lag-aware", metrics.Tick{Queries: 3, NodeQueries: map[string]int64{"standby1": 3}})
	fams = scrape(t, e)
	mustValue(t, fams, 3, "pgbenchx_reads_total", "strategy", "lag-aware", "node", "standby1")
	mustValue(t, fams, 0, "pgbenchx_reads_total", "strategy", "lag-aware", "node", "standby2")
	mustValue(t, fams, 0, "pgbenchx_reads_total", "strategy", "lag-aware", "node", "primary")
}

func TestTicksAddUp(t *testing.T) {
	e := listen(t)
	e.Nodes(cluster)
	e.Phase("read via:pgpool")
	e.Strategy("via:pgpool")
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	ticks := []metrics.Tick{
		{
			Second: 1, At: t0.Add(time.Second), Queries: 100, Errors: 2, Failed: 1, P50MS: 1.5, P99MS: 8,
			LagBytes: map[string]int64{"standby1": 1000, "standby2": 50}, LagMS: map[string]float64{"standby1": 250, "standby2": 4},
			SlotBytes:   map[string]int64{"standby1": 4096, "standby2": 8192},
			NodeQueries: map[string]int64{"primary": 10, "standby1": 40, "standby2": 50},
			NodeErrors:  map[string]int64{"standby1": 2},
			NodeStale:   map[string]int64{"standby1": 5},
		},
		{
			// standby2 died: its lag and slot are unknown this round.
			Second: 2, At: t0.Add(2 * time.Second), Queries: 80, Errors: 7, Failed: 3, P50MS: 2, P99MS: 120,
			LagBytes: map[string]int64{"standby1": 2000}, LagMS: map[string]float64{"standby1": 500},
			SlotBytes:   map[string]int64{"standby1": 4096},
			NodeQueries: map[string]int64{"primary": 20, "standby1": 60, "standby2": 0},
			NodeErrors:  map[string]int64{"standby2": 7},
			NodeStale:   map[string]int64{"standby1": 1},
		},
	}
	for _, tk := range ticks {
		e.Tick("via:pgpool", tk)
	}

	fams := scrape(t, e)
	s := "via:pgpool"
	mustType(t, fams, "pgbenchx_reads_total", dto.MetricType_COUNTER)
	mustType(t, fams, "pgbenchx_read_latency_seconds", dto.MetricType_GAUGE)
	mustValue(t, fams, 30, "pgbenchx_reads_total", "strategy", s, "node", "primary")
	mustValue(t, fams, 100, "pgbenchx_reads_total", "strategy", s, "node", "standby1")
	mustValue(t, fams, 50, "pgbenchx_reads_total", "strategy", s, "node", "standby2")
	mustValue(t, fams, 2, "pgbenchx_read_errors_total", "strategy", s, "node", "standby1")
	mustValue(t, fams, 7, "pgbenchx_read_errors_total", "strategy", s, "node", "standby2")
	mustValue(t, fams, 0, "pgbenchx_read_errors_total", "strategy", s, "node", "primary")
	mustValue(t, fams, 6, "pgbenchx_stale_reads_total", "strategy", s, "node", "standby1")
	mustValue(t, fams, 4, "pgbenchx_failed_reads_total", "strategy", s)

	// Per-second figures are the last second's, in seconds.
	mustValue(t, fams, 80, "pgbenchx_reads_per_second", "strategy", s)
	mustValue(t, fams, 0.002, "pgbenchx_read_latency_seconds", "strategy", s, "quantile", "0.5")
	mustValue(t, fams, 0.12, "pgbenchx_read_latency_seconds", "strategy", s, "quantile", "0.99")
	mustValue(t, fams, float64(t0.Add(2*time.Second).Unix()), "pgbenchx_last_tick_timestamp_seconds", "strategy", s)

	mustValue(t, fams, 2000, "pgbenchx_replica_lag_bytes", "node", "standby1")
	mustValue(t, fams, 0.5, "pgbenchx_replica_lag_seconds", "node", "standby1")
	mustValue(t, fams, 4096, "pgbenchx_slot_retained_bytes", "node", "standby1")
	// Unknown is not 0 and not the stale 50 bytes of the round before.
	mustAbsent(t, fams, "pgbenchx_replica_lag_bytes", "node", "standby2")
	mustAbsent(t, fams, "pgbenchx_replica_lag_seconds", "node", "standby2")
	mustAbsent(t, fams, "pgbenchx_slot_retained_bytes", "node", "standby2")

	// standby2 is back: its series returns.
	e.Tick(s, metrics.Tick{Second: 3, Queries: 1, LagBytes: map[string]int64{"standby1": 0, "standby2": 9}})
	fams = scrape(t, e)
	mustValue(t, fams, 9, "pgbenchx_replica_lag_bytes", "node", "standby2")
	// A known lag of 0 is reported as 0.
	mustValue(t, fams, 0, "pgbenchx_replica_lag_bytes", "node", "standby1")
	mustAbsent(t, fams, "pgbenchx_replica_lag_seconds", "node", "standby1")
}

func TestNoLatencyWithoutReads(t *testing.T) {
	e := listen(t)
	e.Tick("round-robin", metrics.Tick{Queries: 5, P50MS: 1, P99MS: 2})
	fams := scrape(t, e)
	mustValue(t, fams, 0.001, "pgbenchx_read_latency_seconds", "strategy", "round-robin", "quantile", "0.5")
	// A second in which no read ended has quantiles of 0 in the tick;
	// they are not latencies.
	e.Tick("round-robin", metrics.Tick{})
	fams = scrape(t, e)
	mustAbsent(t, fams, "pgbenchx_read_latency_seconds")
	mustValue(t, fams, 0, "pgbenchx_reads_per_second", "strategy", "round-robin")
	// Failed reads ended too: their latency counts.
	e.Tick("round-robin", metrics.Tick{Failed: 2, P50MS: 1000, P99MS: 1000})
	fams = scrape(t, e)
	mustValue(t, fams, 1, "pgbenchx_read_latency_seconds", "strategy", "round-robin", "quantile", "0.99")
}

func TestPhaseAndStrategySwitch(t *testing.T) {
	e := listen(t)
	e.Nodes(cluster)
	before := time.Now()
	e.Phase("schema")
	e.Phase("write")
	fams := scrape(t, e)
	mustValue(t, fams, 0, "pgbenchx_phase", "phase", "schema")
	mustValue(t, fams, 1, "pgbenchx_phase", "phase", "write")
	start, ok := value(t, fams, "pgbenchx_phase_start_timestamp_seconds", "phase", "write")
	if !ok || start < float64(before.Unix()) || start > float64(time.Now().Unix()+1) {
		t.Errorf("phase start %v (%v), want about %v", start, ok, before.Unix())
	}

	e.Phase("read round-robin")
	e.Strategy("round-robin")
	e.Tick("round-robin", metrics.Tick{Queries: 10, P50MS: 1, P99MS: 3,
		LagBytes: map[string]int64{"standby1": 7}, NodeQueries: map[string]int64{"standby1": 10}})
	e.Phase("read lag-aware")
	fams = scrape(t, e)
	mustValue(t, fams, 0, "pgbenchx_phase", "phase", "read round-robin")
	mustValue(t, fams, 1, "pgbenchx_phase", "phase", "read lag-aware")
	// The ended phase's last second is gone; its counters stay.
	mustAbsent(t, fams, "pgbenchx_reads_per_second")
	mustAbsent(t, fams, "pgbenchx_read_latency_seconds")
	mustAbsent(t, fams, "pgbenchx_replica_lag_bytes")
	mustValue(t, fams, 10, "pgbenchx_reads_total", "strategy", "round-robin", "node", "standby1")

	e.Strategy("lag-aware")
	e.Tick("lag-aware", metrics.Tick{Queries: 4, P50MS: 1, P99MS: 3, NodeQueries: map[string]int64{"standby2": 4}})
	fams = scrape(t, e)
	mustValue(t, fams, 4, "pgbenchx_reads_per_second", "strategy", "lag-aware")
	mustAbsent(t, fams, "pgbenchx_reads_per_second", "strategy", "round-robin")
	mustValue(t, fams, 10, "pgbenchx_reads_total", "strategy", "round-robin", "node", "standby1")
	mustValue(t, fams, 0, "pgbenchx_reads_total", "strategy", "lag-aware", "node", "standby1")
	mustValue(t, fams, 4, "pgbenchx_reads_total", "strategy", "lag-aware", "node", "standby2")

	// Re-entering a phase seen before makes it current again.
	e.Phase("write")
	fams = scrape(t, e)
	mustValue(t, fams, 1, "pgbenchx_phase", "phase", "write")
	mustValue(t, fams, 0, "pgbenchx_phase", "phase", "read lag-aware")
	if f := fams["pgbenchx_phase"]; f == nil || len(f.GetMetric()) != 4 {
		t.Errorf("pgbenchx_phase: %v, want 4 phases", f)
	}
}

func TestFailoverRoles(t *testing.T) {
	e := listen(t)
	e.Nodes(cluster)
	e.Strategy("round-robin")
	e.Tick("round-robin", metrics.Tick{Queries: 3, NodeQueries: map[string]int64{"primary": 3}})
	// primary died, standby1 was promoted; the old primary left the list.
	e.Nodes([]Node{{"standby1", "primary"}, {"standby2", "standby"}, {"standby2", "standby"}})
	fams := scrape(t, e)
	mustValue(t, fams, 1, "pgbenchx_node_info", "node", "standby1", "role", "primary")
	mustAbsent(t, fams, "pgbenchx_node_info", "node", "standby1", "role", "standby")
	mustAbsent(t, fams, "pgbenchx_node_info", "node", "primary")
	mustValue(t, fams, 1, "pgbenchx_node_info", "node", "standby2")
	// A counter never goes away: that would read as a reset.
	mustValue(t, fams, 3, "pgbenchx_reads_total", "strategy", "round-robin", "node", "primary")
}

func TestIndex(t *testing.T) {
	e := listen(t)
	resp, err := client.Get("http://" + e.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `href="/metrics"`) {
		t.Errorf("GET /: %s %q", resp.Status, b)
	}
	resp, err = client.Get("http://" + e.Addr() + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope: %s, want 404", resp.Status)
	}
}

func TestListenErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	if e, err := Listen(addr); err == nil {
		e.Close(context.Background())
		t.Fatalf("Listen(%s) on a busy port succeeded", addr)
	} else if !strings.Contains(err.Error(), addr) {
		t.Errorf("Listen(%s): %v, want the address named", addr, err)
	}

	if e, err := Listen("nonsense"); err == nil {
		e.Close(context.Background())
		t.Fatal(`Listen("nonsense") succeeded`)
	} else if !strings.Contains(err.Error(), "nonsense") {
		t.Errorf(`Listen("nonsense"): %v, want the address named`, err)
	}
}

func TestClose(t *testing.T) {
	e, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scrape(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// A fresh connection, not one kept alive from the scrape above.
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := c.Get("http://" + e.Addr() + "/metrics"); err == nil {
		resp.Body.Close()
		t.Fatalf("scrape after Close: %s, want an error", resp.Status)
	}
	// Ticks after Close are harmless (the run may still be winding down).
	e.Tick("round-robin", metrics.Tick{Queries: 1})
}

// TestConcurrent is for -race: ticks, role changes and phases from the
// run while scrapes come in.
func TestConcurrent(t *testing.T) {
	e := listen(t)
	e.Nodes(cluster)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					if _, err := fetch(e); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	lag := map[string]int64{"standby1": 1}
	for i := range 200 {
		s := fmt.Sprintf("s%d", i%3)
		e.Strategy(s)
		e.Tick(s, metrics.Tick{Queries: 1, P50MS: 1, P99MS: 1, LagBytes: lag, NodeQueries: map[string]int64{"standby1": 1}})
		// The caller may reuse its maps after Tick.
		lag["standby1"] = int64(i)
		if i%50 == 0 {
			e.Phase(fmt.Sprintf("read %s", s))
			e.Nodes(cluster)
			e.SetVersion("v0")
		}
	}
	close(stop)
	wg.Wait()
	fams := scrape(t, e)
	var total float64
	for i := range 3 {
		v, _ := value(t, fams, "pgbenchx_reads_total", "strategy", fmt.Sprintf("s%d", i), "node", "standby1")
		total += v
	}
	if total != 200 {
		t.Errorf("reads_total over strategies = %v, want 200", total)
	}
}
