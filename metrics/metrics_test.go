package metrics

import (
	"encoding/json"
	"testing"
	"time"
)

func TestHistJSONRoundTripIsExact(t *testing.T) {
	h := NewHist()
	for _, us := range []int64{1, 50, 999, 1000, 1001, 123456, 59_000_000, 70_000_000} {
		h.RecordUS(us)
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
	if back.Max() < 59_000_000 {
		t.Errorf("a value over 60 s was dropped instead of clamped: max %d", back.Max())
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

func TestRecorderWarmupAndTicks(t *testing.T) {
	r := NewRecorder([]string{"primary", "standby1"}, []string{"primary", "standby"}, []string{"point", "range"}, false)
	c1, c2 := r.NewClient(), r.NewClient()
	c1.Record(1, 0, time.Millisecond) // warmup: must not count
	r.Error(1, ErrConflict)
	r.Start(time.Now())
	for i := 0; i < 10; i++ {
		c1.Record(1, 0, time.Millisecond)
		c2.Record(1, 1, 2*time.Millisecond)
	}
	r.Error(1, ErrConflict)
	r.Retry(1)
	r.Stale(1, true)
	r.Stale(1, false)
	r.Tick(time.Now(), map[string]int64{"standby1": 10}, nil)
	c2.Record(0, 0, time.Millisecond) // after the last tick: still in the totals
	res := r.Finish("round-robin", time.Now())
	if len(res.Ticks) != 1 || res.Ticks[0].Queries != 20 || res.Ticks[0].Errors != 1 {
		t.Errorf("ticks %+v", res.Ticks)
	}
	s1 := res.Nodes[1]
	if s1.Kinds["point"].TotalCount() != 10 || s1.Kinds["range"].TotalCount() != 10 {
		t.Errorf("standby1 counts point %d range %d, want 10 and 10", s1.Kinds["point"].TotalCount(), s1.Kinds["range"].TotalCount())
	}
	if s1.Errors[ErrConflict] != 1 || s1.Retries != 1 || s1.StaleReads != 1 || s1.StaleChecked != 2 {
		t.Errorf("standby1 counters %+v", s1)
	}
	if res.Nodes[0].Total().TotalCount() != 1 || res.Total().TotalCount() != 21 {
		t.Errorf("totals primary %d all %d", res.Nodes[0].Total().TotalCount(), res.Total().TotalCount())
	}
}

func TestHeartbeatLag(t *testing.T) {
	h := &Heartbeat{interval: 200 * time.Millisecond}
	base := time.Unix(1000, 0)
	for seq := int64(1); seq <= 5; seq++ {
		h.times[seq%hbRing].Store(base.Add(time.Duration(seq) * 100 * time.Millisecond).UnixNano())
		h.latest.Store(seq)
	}
	now := base.Add(time.Second)
	tests := []struct {
		seen int64
		want time.Duration
	}{
		{5, 0},                      // shows the newest: no lag, however long ago it was
		{4, 500 * time.Millisecond}, // first unseen commit (5) returned at 0.5 s
		{2, 700 * time.Millisecond}, // first unseen (3) at 0.3 s
	}
	for _, tt := range tests {
		if got, ok := h.Lag(tt.seen, now); !ok || got != tt.want {
			t.Errorf("Lag(%d) = %v, %v; want %v", tt.seen, got, ok, tt.want)
		}
	}
	if _, ok := h.Lag(5-hbRing, now); ok {
		t.Error("a seq older than the ring is reported as known")
	}
	// The heartbeat stalled (last commit 0.5 s before, 3 intervals = 0.6 s):
	// a standby showing the last seq is not known to be caught up.
	later := base.Add(2 * time.Second)
	if h.Fresh(later) {
		t.Error("a heartbeat silent for 1.5 s is reported fresh")
	}
	if d, ok := h.Lag(5, later); ok {
		t.Errorf("Lag on a stalled heartbeat = %v, known; want unknown", d)
	}
}
