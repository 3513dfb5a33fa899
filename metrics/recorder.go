package metrics

import (
	"sync"
	"sync/atomic"
	"time"
)

// Error classes counted per node.
const (
	ErrConnection = "connection" // the node is unreachable or the connection broke
	ErrConflict   = "conflict"   // SQLSTATE 40001: canceled by a recovery conflict on a standby
	ErrTimeout    = "timeout"
	ErrQuery      = "query" // any other error
)

var errClasses = []string{ErrConnection, ErrConflict, ErrTimeout, ErrQuery}

type nodeCounters struct {
	errs         [4]atomic.Int64 // by errClasses index
	retries      atomic.Int64
	stale        atomic.Int64
	staleChecked atomic.Int64
}

// Recorder collects one strategy's read phase: latency per node and query
// kind, errors, retries and stale reads. Each client goroutine records into
// its own ClientRecorder; Tick merges them once a second (cockroach
// workload's model), so the query path never contends with other clients.
type Recorder struct {
	nodes, roles, kinds []string
	measuring           atomic.Bool
	counters            []nodeCounters

	mu          sync.Mutex
	clients     []*ClientRecorder
	totals      []*Hist // [node*len(kinds)+kind]
	scheduleLag *Hist
	ticks       []Tick
	start       time.Time
	lastErrs    int64
	open        bool
}

// NewRecorder prepares a recorder for the given nodes and query kinds.
// openLoop adds a schedule-lag histogram.
func NewRecorder(nodes, roles, kinds []string, openLoop bool) *Recorder {
	r := &Recorder{nodes: nodes, roles: roles, kinds: kinds, counters: make([]nodeCounters, len(nodes)), open: openLoop}
	r.totals = make([]*Hist, len(nodes)*len(kinds))
	for i := range r.totals {
		r.totals[i] = NewHist()
	}
	if openLoop {
		r.scheduleLag = NewHist()
	}
	return r
}

// ClientRecorder is one client goroutine's histograms. Its mutex is taken
// by that client per record and by Tick once a second: uncontended in
// practice, and what makes the once-a-second swap safe.
type ClientRecorder struct {
	r        *Recorder
	mu       sync.Mutex
	hists    []*Hist
	schedule *Hist
}

// NewClient registers a client.
func (r *Recorder) NewClient() *ClientRecorder {
	c := &ClientRecorder{r: r, hists: make([]*Hist, len(r.totals))}
	for i := range c.hists {
		c.hists[i] = NewHist()
	}
	if r.open {
		c.schedule = NewHist()
	}
	r.mu.Lock()
	r.clients = append(r.clients, c)
	r.mu.Unlock()
	return c
}

// Measuring says whether the warmup is over.
func (r *Recorder) Measuring() bool { return r.measuring.Load() }

// Start ends the warmup: from now on records count.
func (r *Recorder) Start(now time.Time) {
	r.mu.Lock()
	r.start = now
	for _, c := range r.clients {
		c.mu.Lock()
		for _, h := range c.hists {
			h.Reset()
		}
		if c.schedule != nil {
			c.schedule.Reset()
		}
		c.mu.Unlock()
	}
	r.mu.Unlock()
	r.measuring.Store(true)
}

// Record adds one query's latency (due to last row) on a node.
func (c *ClientRecorder) Record(node, kind int, latency time.Duration) {
	if !c.r.measuring.Load() {
		return
	}
	c.mu.Lock()
	c.hists[node*len(c.r.kinds)+kind].RecordUS(latency.Microseconds())
	c.mu.Unlock()
}

// RecordSchedule adds how late an open-loop query started after its due time.
func (c *ClientRecorder) RecordSchedule(late time.Duration) {
	if c.schedule == nil || !c.r.measuring.Load() {
		return
	}
	c.mu.Lock()
	c.schedule.RecordUS(late.Microseconds())
	c.mu.Unlock()
}

// Error counts a failed query on a node by class.
func (r *Recorder) Error(node int, class string) {
	if !r.measuring.Load() {
		return
	}
	for i, c := range errClasses {
		if c == class {
			r.counters[node].errs[i].Add(1)
			return
		}
	}
	r.counters[node].errs[len(errClasses)-1].Add(1)
}

// Retry counts a query retried elsewhere after failing on node.
func (r *Recorder) Retry(node int) {
	if r.measuring.Load() {
		r.counters[node].retries.Add(1)
	}
}

// Stale counts a read whose staleness was checked, and whether it was stale.
func (r *Recorder) Stale(node int, stale bool) {
	if !r.measuring.Load() {
		return
	}
	r.counters[node].staleChecked.Add(1)
	if stale {
		r.counters[node].stale.Add(1)
	}
}

func (r *Recorder) errorTotal() int64 {
	var t int64
	for i := range r.counters {
		for j := range r.counters[i].errs {
			t += r.counters[i].errs[j].Load()
		}
	}
	return t
}

// Tick merges every client's interval into the totals and appends one
// second to the time series, with the lag last sampled.
func (r *Recorder) Tick(now time.Time, lagBytes map[string]int64, lagMS map[string]float64) {
	if !r.measuring.Load() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	interval := NewHist()
	for _, c := range r.clients {
		c.mu.Lock()
		for i, h := range c.hists {
			r.totals[i].Add(h)
			interval.Add(h)
			h.Reset()
		}
		if c.schedule != nil {
			r.scheduleLag.Add(c.schedule)
			c.schedule.Reset()
		}
		c.mu.Unlock()
	}
	errs := r.errorTotal()
	s := interval.Summary()
	r.ticks = append(r.ticks, Tick{
		Second: len(r.ticks) + 1, Queries: interval.TotalCount(), Errors: errs - r.lastErrs,
		P50MS: s.P50, P99MS: s.P99, LagBytes: lagBytes, LagMS: lagMS,
	})
	r.lastErrs = errs
}

// Ticks returns the time series so far.
func (r *Recorder) Ticks() []Tick {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Tick(nil), r.ticks...)
}

// Finish merges what is left and returns the strategy's result. Seconds is
// the measured time: from Start to now.
func (r *Recorder) Finish(strategy string, now time.Time) *StrategyResult {
	// A last partial tick would report a fraction of a second as a second:
	// fold the remainder into the totals only.
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.clients {
		c.mu.Lock()
		for i, h := range c.hists {
			r.totals[i].Add(h)
			h.Reset()
		}
		if c.schedule != nil {
			r.scheduleLag.Add(c.schedule)
			c.schedule.Reset()
		}
		c.mu.Unlock()
	}
	r.measuring.Store(false)
	res := &StrategyResult{Strategy: strategy, Ticks: r.ticks, ScheduleLag: r.scheduleLag}
	if !r.start.IsZero() {
		res.Seconds = now.Sub(r.start).Seconds()
	}
	for n, name := range r.nodes {
		nr := &NodeResult{Node: name, Role: r.roles[n], Kinds: map[string]*Hist{}, Errors: map[string]int64{}}
		for k, kind := range r.kinds {
			nr.Kinds[kind] = r.totals[n*len(r.kinds)+k]
		}
		for i, c := range errClasses {
			if v := r.counters[n].errs[i].Load(); v > 0 {
				nr.Errors[c] = v
			}
		}
		nr.Retries = r.counters[n].retries.Load()
		nr.StaleReads = r.counters[n].stale.Load()
		nr.StaleChecked = r.counters[n].staleChecked.Load()
		res.Nodes = append(res.Nodes, nr)
	}
	return res
}
