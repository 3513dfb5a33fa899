package metrics

import (
	"encoding/json"
	"testing"
	"time"
)

func TestHistJSONRoundTripIsExact(t *testing.T) {
	h := NewHist()
	var clipped int
	for _, us := range []int64{1, 50, 999, 1000, 1001, 123456, 59_000_000, 70_000_000, 3_500_000_000, 7_200_000_000} {
		if h.RecordUS(us) {
			clipped++
		}
	}
	if clipped != 1 {
		t.Errorf("%d values reported clipped, want 1 (the one over an hour)", clipped)
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var back Hist
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !h.Equals(back.Histogram) {
		t.Errorf("histogram changed through JSON: %v vs %v", h.Summary(), back.Summary())
	}
	if back.Max() < 3_500_000_000 {
		t.Errorf("a value over an hour was dropped instead of clamped: max %d", back.Max())
	}
}

func TestMergeAddsCountsExactly(t *testing.T) {
	a, b := NewHist(), NewHist()
	for i := int64(1); i <= 1000; i++ {
		a.RecordUS(i)
		b.RecordUS(i * 100)
	}
	m := NewHist()
	m.Add(a)
	m.Add(b)
	if m.TotalCount() != a.TotalCount()+b.TotalCount() {
		t.Fatalf("merged count %d, want %d", m.TotalCount(), a.TotalCount()+b.TotalCount())
	}
	// The merged median is a value of the merged distribution, not the
	// mean of two medians.
	avg := (a.Summary().P50 + b.Summary().P50) / 2
	if got := m.Summary().P50; got == avg || got > 1.01 || got < 0.99 {
		t.Errorf("merged p50 %.3f ms (mean of medians would be %.3f)", got, avg)
	}
}

func TestRecorderCountsEveryReadOnceWhereItHappened(t *testing.T) {
	r := NewRecorder([]string{"primary", "standby1", "standby2"}, []Role{RolePrimary, RoleStandby, RoleStandby}, []string{"point", "range"}, true)
	c1, c2 := r.NewClient(), r.NewClient()
	c1.Attempt(1, 0, time.Millisecond, true, false, Fresh) // warmup: must not count
	c1.Read(time.Millisecond)
	r.Error(1, "40001 serialization_failure", func() string { return "canceled" })
	r.Failed(true)
	r.Start(time.Now())
	for i := 0; i < 10; i++ {
		c1.Attempt(1, 0, time.Millisecond, true, false, Fresh)
		c1.Read(time.Millisecond)
		c2.Attempt(2, 1, 2*time.Millisecond, true, false, Unchecked)
		c2.Read(2 * time.Millisecond)
	}
	// A read that timed out on standby2 after 1 s and was retried on
	// standby1, where it took 1 ms: each try on its node, the read once
	// with its whole time.
	c1.Attempt(2, 0, time.Second, false, false, Unchecked)
	r.Error(2, "client_timeout", func() string { return "timeout: context deadline exceeded" })
	c1.Attempt(1, 0, time.Millisecond, true, true, Stale)
	c1.Read(time.Second + time.Millisecond)
	// A read that failed on both standbys: two errors, one retry, one failed read.
	c2.Attempt(1, 1, 3*time.Millisecond, false, false, Unchecked)
	r.Error(1, "57014 query_canceled", func() string { return "canceling statement due to statement timeout" })
	c2.Attempt(2, 1, 4*time.Millisecond, false, true, Unchecked)
	r.Error(2, "57014 query_canceled", func() string { return "canceling statement due to statement timeout (2)" })
	c2.Read(7 * time.Millisecond)
	r.Failed(false)
	c1.Schedule(50 * time.Microsecond)
	r.Tick(time.Now(), TickLag{Bytes: map[string]int64{"standby1": 10}})
	// After the last tick: in the totals, not in a tick.
	r.Failed(true)
	c2.Read(0)
	r.Unsent(time.Now().Add(-3*time.Second), time.Second, 3, time.Now())
	res := r.Finish("round-robin", time.Now())

	if len(res.Ticks) != 1 || res.Ticks[0].Queries != 21 || res.Ticks[0].Errors != 3 || res.Ticks[0].Failed != 1 {
		t.Errorf("ticks %+v, want one with 21 successful reads, 3 errors, 1 failed read", res.Ticks)
	}
	s1, s2 := res.Nodes[1], res.Nodes[2]
	if s1.Kinds["point"].TotalCount() != 11 || s2.Kinds["range"].TotalCount() != 10 {
		t.Errorf("successful attempts: standby1 point %d, standby2 range %d; want 11 and 10", s1.Kinds["point"].TotalCount(), s2.Kinds["range"].TotalCount())
	}
	if s2.FailedLatency == nil || s2.FailedLatency.TotalCount() != 2 || s2.FailedLatency.Max() < 990_000 {
		t.Errorf("standby2's failed attempts %v: want 2, the 1 s timeout among them", s2.FailedLatency.Summary())
	}
	if s2.Attempts().Max() < 990_000 {
		t.Error("standby2's latency does not show the 1 s timeout it served")
	}
	if s1.Errors["57014 query_canceled"] != 1 || s2.Errors["client_timeout"] != 1 || s2.Errors["57014 query_canceled"] != 1 {
		t.Errorf("errors standby1 %v standby2 %v", s1.Errors, s2.Errors)
	}
	if s1.ErrorSamples["57014 query_canceled"] != "canceling statement due to statement timeout" ||
		s2.ErrorSamples["57014 query_canceled"] != "canceling statement due to statement timeout (2)" {
		t.Errorf("samples %q %q, want each node's first message", s1.ErrorSamples, s2.ErrorSamples)
	}
	if s1.Retries != 1 || s2.Retries != 1 || res.Nodes[0].Retries != 0 {
		t.Errorf("retries %d %d %d: want each retry on the node it ran on", res.Nodes[0].Retries, s1.Retries, s2.Retries)
	}
	if s1.StaleReads != 1 || s1.StaleChecked != 11 || s2.StaleChecked != 0 {
		t.Errorf("stale standby1 %d/%d, standby2 checked %d", s1.StaleReads, s1.StaleChecked, s2.StaleChecked)
	}
	// 20 + the retried one + the failed one + the no-target one + 3 unsent.
	if got := res.EndToEnd.TotalCount(); got != 26 {
		t.Errorf("end-to-end reads %d, want 26", got)
	}
	if res.EndToEnd.Max() < 2_900_000 {
		t.Errorf("end-to-end max %d us: the unsent slot due 3 s before the end is missing", res.EndToEnd.Max())
	}
	if res.Failed != 2 || res.NoTarget != 1 || res.Unsent != 3 || res.ScheduleLag.TotalCount() != 1 {
		t.Errorf("failed %d no-target %d unsent %d schedule %d", res.Failed, res.NoTarget, res.Unsent, res.ScheduleLag.TotalCount())
	}
	if res.Total().TotalCount() != 21 || res.Reads() != res.EndToEnd {
		t.Errorf("successful attempts %d, want 21", res.Total().TotalCount())
	}
	if res.MeasuredFrom.IsZero() || !res.MeasuredTo.After(res.MeasuredFrom) {
		t.Errorf("window %v..%v", res.MeasuredFrom, res.MeasuredTo)
	}
}

func TestRecorderMemoryDoesNotGrowWithClients(t *testing.T) {
	// Histograms are per node and kind, buffers per client: 256 clients
	// cost their buffers, not 256 x nodes x kinds histograms.
	r := NewRecorder([]string{"primary", "standby1", "standby2"}, []Role{RolePrimary, RoleStandby, RoleStandby}, []string{"point", "range", "report"}, false)
	for range 256 {
		r.NewClient()
	}
	if n := len(r.ok) + len(r.failedLat); n > 12 {
		t.Errorf("%d histograms for 3 nodes x 3 kinds", n)
	}
}
