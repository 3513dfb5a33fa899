package metrics

import (
	"sync"
	"sync/atomic"
	"time"
)

// Recorder collects one strategy's read phase: every attempt on the node
// that ran it, every read once end to end, errors by label, retries and
// stale reads. Each client goroutine appends compact records to a buffer
// of its own; Tick takes every buffer once a second and folds it into
// whole histograms (cockroach workload's model). So the query path touches
// no histogram and no cache line another client writes, and memory grows
// with the nodes and query kinds, not with the clients: a histogram is
// ~190 KiB, a client's buffer holds one second of its records.
type Recorder struct {
	nodes, kinds []string
	roles        []Role
	open         bool
	measuring    atomic.Bool

	// Rare events: counted with atomics or under errMu, off the hot path.
	failed, unfinished, noTarget, unsent, errTotal atomic.Int64
	nodeErrs                                       []atomic.Int64 // failed attempts by node, for the per-second series
	errMu                                          sync.Mutex
	errs                                           []map[string]int64  // by node: label -> count
	samples                                        []map[string]string // by node: label -> one message

	mu          sync.Mutex
	clients     []*ClientRecorder
	ok          []*Hist // successful attempts [node*len(kinds)+kind]
	failedLat   []*Hist // failed attempts by node, allocated when first needed
	retries     []int64
	tickOK      []int64 // successful attempts by node since the last tick
	tickStale   []int64 // stale reads by node since the last tick
	lastNodeErr []int64
	stale       []int64
	checked     []int64
	e2e         *Hist
	scheduleLag *Hist
	commit      *Hist // writes' commit latency, nil until one
	interval    *Hist // one second's reads, reused
	clipped     int64
	ticks       []Tick
	start       time.Time
	lastErrs    int64
	lastFailed  int64
	spare       []uint64
}

// NewRecorder prepares a recorder for the given nodes and query kinds;
// at most 255 of each. openLoop adds a schedule-lag histogram.
func NewRecorder(nodes []string, roles []Role, kinds []string, openLoop bool) *Recorder {
	n := len(nodes)
	r := &Recorder{
		nodes: nodes, roles: roles, kinds: kinds, open: openLoop,
		errs: make([]map[string]int64, n), samples: make([]map[string]string, n),
		ok: make([]*Hist, n*len(kinds)), failedLat: make([]*Hist, n),
		retries: make([]int64, n), stale: make([]int64, n), checked: make([]int64, n),
		nodeErrs: make([]atomic.Int64, n), tickOK: make([]int64, n), tickStale: make([]int64, n), lastNodeErr: make([]int64, n),
		e2e: NewHist(), interval: NewHist(),
	}
	for i := range r.ok {
		r.ok[i] = NewHist()
	}
	if openLoop {
		r.scheduleLag = NewHist()
	}
	return r
}

// A record packs one event into 64 bits: latency in us (40 bits, 12 days),
// node and kind (8 bits each), what it is (3 bits) and flags.
const (
	latBits   = 40
	latMask   = 1<<latBits - 1
	nodeShift = 40
	kindShift = 48
	typeShift = 56

	recAttemptOK     = 0
	recAttemptFailed = 1
	recRead          = 2
	recSchedule      = 3

	flagRetry   = 1 << 59
	flagChecked = 1 << 60
	flagStale   = 1 << 61
)

func pack(typ uint64, node, kind int, d time.Duration) uint64 {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	} else if us > latMask {
		us = latMask
	}
	return uint64(us) | uint64(node&0xff)<<nodeShift | uint64(kind&0xff)<<kindShift | typ<<typeShift
}

// ClientRecorder is one client goroutine's buffer. Its mutex is taken by
// that client per record and by Tick once a second: uncontended in
// practice, and what makes the once-a-second swap safe.
type ClientRecorder struct {
	r   *Recorder
	mu  sync.Mutex
	buf []uint64
}

// NewClient registers a client.
func (r *Recorder) NewClient() *ClientRecorder {
	c := &ClientRecorder{r: r, buf: make([]uint64, 0, 256)}
	r.mu.Lock()
	r.clients = append(r.clients, c)
	r.mu.Unlock()
	return c
}

// Measuring says whether the warmup is over and the phase not finished.
func (r *Recorder) Measuring() bool { return r.measuring.Load() }

// Start ends the warmup: from now on records count.
func (r *Recorder) Start(now time.Time) {
	r.mu.Lock()
	r.start = now
	for _, c := range r.clients {
		c.mu.Lock()
		c.buf = c.buf[:0]
		c.mu.Unlock()
	}
	r.mu.Unlock()
	r.measuring.Store(true)
}

func (c *ClientRecorder) add(rec uint64) {
	if !c.r.measuring.Load() {
		return
	}
	c.mu.Lock()
	c.buf = append(c.buf, rec)
	c.mu.Unlock()
}

// Staleness is what a successful read's heartbeat check found.
type Staleness int8

// The staleness verdicts.
const (
	Unchecked Staleness = iota // the read does not report a heartbeat, or the heartbeat stalled
	Fresh
	Stale
)

// Attempt records one try of a read on a node: its latency (from the
// read's due time for a first try, from the try's start for a retry),
// whether it succeeded, whether it was a retry, and for a successful read
// what its staleness check found.
func (c *ClientRecorder) Attempt(node, kind int, latency time.Duration, ok, retry bool, st Staleness) {
	typ := uint64(recAttemptFailed)
	if ok {
		typ = recAttemptOK
	}
	rec := pack(typ, node, kind, latency)
	if retry {
		rec |= flagRetry
	}
	switch st {
	case Fresh:
		rec |= flagChecked
	case Stale:
		rec |= flagChecked | flagStale
	}
	c.add(rec)
}

// Read records a read once, end to end: from its due time to its end,
// whatever the end was.
func (c *ClientRecorder) Read(latency time.Duration) { c.add(pack(recRead, 0, 0, latency)) }

// Schedule adds how late an open-loop read started after its due time.
func (c *ClientRecorder) Schedule(late time.Duration) {
	if c.r.open {
		c.add(pack(recSchedule, 0, 0, late))
	}
}

// Error counts a failed attempt on a node by label, keeping the first
// message of each label as its sample: message is called only for that
// one. It takes a lock: failures are not the hot path, and a label set is
// small.
func (r *Recorder) Error(node int, label string, message func() string) {
	if !r.measuring.Load() {
		return
	}
	r.errTotal.Add(1)
	r.nodeErrs[node].Add(1)
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if r.errs[node] == nil {
		r.errs[node], r.samples[node] = map[string]int64{}, map[string]string{}
	}
	r.errs[node][label]++
	if _, ok := r.samples[node][label]; !ok {
		r.samples[node][label] = message()
	}
}

// Failed counts a read that failed on every try; noTarget says it found
// no node to try at all (it is then an error of the strategy too).
func (r *Recorder) Failed(noTarget bool) {
	if !r.measuring.Load() {
		return
	}
	r.failed.Add(1)
	if noTarget {
		r.noTarget.Add(1)
		r.errTotal.Add(1)
	}
}

// Commit records one write's commit latency on the primary (a background
// batch, a session write). Writes are few next to reads: a lock is fine.
func (r *Recorder) Commit(d time.Duration) {
	if !r.measuring.Load() {
		return
	}
	r.mu.Lock()
	if r.commit == nil {
		r.commit = NewHist()
	}
	if r.commit.RecordUS(d.Microseconds()) {
		r.clipped++
	}
	r.mu.Unlock()
}

// Unfinished counts a read still running when the phase ended.
func (r *Recorder) Unfinished() {
	if r.measuring.Load() {
		r.unfinished.Add(1)
	}
}

// Unsent records n open-loop slots that fell due at first, first+step, ...
// but were never sent, each with the time it had waited at end: the worst
// latencies of an overload, which a recorder of completed reads never sees.
func (r *Recorder) Unsent(first time.Time, step time.Duration, n int64, end time.Time) {
	if n <= 0 || !r.measuring.Load() {
		return
	}
	r.unsent.Add(n)
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := int64(0); k < n; k++ {
		if r.e2e.RecordUS(end.Sub(first.Add(time.Duration(k) * step)).Microseconds()) {
			r.clipped++
		}
	}
}

// drain folds every client's buffer into the totals; r.mu must be held.
// It returns the successful attempts and the reads it saw, the reads in
// r.interval when interval is true.
func (r *Recorder) drain(interval bool) (okCount int64) {
	for _, c := range r.clients {
		c.mu.Lock()
		buf := c.buf
		c.buf = r.spare[:0]
		c.mu.Unlock()
		okCount += r.fold(buf, interval)
		r.spare = buf
	}
	return okCount
}

func (r *Recorder) fold(buf []uint64, interval bool) (okCount int64) {
	nk := len(r.kinds)
	for _, rec := range buf {
		us := int64(rec & latMask)
		node, kind := int(rec>>nodeShift&0xff), int(rec>>kindShift&0xff)
		var clipped bool
		switch rec >> typeShift & 7 {
		case recAttemptOK:
			okCount++
			r.tickOK[node]++
			clipped = r.ok[node*nk+kind].RecordUS(us)
			if rec&flagChecked != 0 {
				r.checked[node]++
				if rec&flagStale != 0 {
					r.stale[node]++
					r.tickStale[node]++
				}
			}
		case recAttemptFailed:
			if r.failedLat[node] == nil {
				r.failedLat[node] = NewHist()
			}
			clipped = r.failedLat[node].RecordUS(us)
		case recRead:
			clipped = r.e2e.RecordUS(us)
			if interval {
				r.interval.RecordUS(us)
			}
		case recSchedule:
			clipped = r.scheduleLag.RecordUS(us)
		}
		if rec&flagRetry != 0 {
			r.retries[node]++
		}
		if clipped {
			r.clipped++
		}
	}
	return okCount
}

// Tick folds every client's last second into the totals and appends one
// second to the time series, with the lag last sampled.
func (r *Recorder) Tick(now time.Time, lag TickLag) {
	if !r.measuring.Load() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.interval.Reset()
	ok := r.drain(true)
	errs, failed := r.errTotal.Load(), r.failed.Load()
	s := r.interval.Summary()
	t := Tick{
		Second: len(r.ticks) + 1, At: now, Queries: ok, Errors: errs - r.lastErrs, Failed: failed - r.lastFailed,
		P50MS: s.P50, P99MS: s.P99, LagBytes: lag.Bytes, LagMS: lag.MS, SlotBytes: lag.Slots,
		NodeQueries: make(map[string]int64, len(r.nodes)), NodeErrors: map[string]int64{},
	}
	for n, name := range r.nodes {
		t.NodeQueries[name] = r.tickOK[n]
		r.tickOK[n] = 0
		if st := r.tickStale[n]; st != 0 {
			if t.NodeStale == nil {
				t.NodeStale = map[string]int64{}
			}
			t.NodeStale[name] = st
			r.tickStale[n] = 0
		}
		if e := r.nodeErrs[n].Load(); e != r.lastNodeErr[n] {
			t.NodeErrors[name] = e - r.lastNodeErr[n]
			r.lastNodeErr[n] = e
		}
	}
	r.ticks = append(r.ticks, t)
	r.lastErrs, r.lastFailed = errs, failed
}

// Ticks returns the time series so far.
func (r *Recorder) Ticks() []Tick {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Tick(nil), r.ticks...)
}

// Finish folds what is left, stops recording and returns the strategy's
// result. The measured window runs from Start to end. Call it once every
// client has stopped recording, or their last records are lost.
func (r *Recorder) Finish(strategy string, end time.Time) *StrategyResult {
	// A last partial tick would report a fraction of a second as a second:
	// the remainder goes into the totals only.
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drain(false)
	r.measuring.Store(false)
	res := &StrategyResult{
		Strategy: strategy, Ticks: r.ticks, ScheduleLag: r.scheduleLag, EndToEnd: r.e2e, CommitLatency: r.commit,
		Failed: r.failed.Load(), Unfinished: r.unfinished.Load(), NoTarget: r.noTarget.Load(),
		Unsent: r.unsent.Load(), Clipped: r.clipped,
	}
	if !r.start.IsZero() {
		res.Seconds = end.Sub(r.start).Seconds()
		res.MeasuredFrom, res.MeasuredTo = r.start.UTC(), end.UTC()
	}
	r.errMu.Lock()
	defer r.errMu.Unlock()
	for n, name := range r.nodes {
		nr := &NodeResult{
			Node: name, Role: r.roles[n], Kinds: map[string]*Hist{}, FailedLatency: r.failedLat[n],
			Errors: r.errs[n], ErrorSamples: r.samples[n],
			Retries: r.retries[n], StaleReads: r.stale[n], StaleChecked: r.checked[n],
		}
		for k, kind := range r.kinds {
			nr.Kinds[kind] = r.ok[n*len(r.kinds)+k]
		}
		res.Nodes = append(res.Nodes, nr)
	}
	return res
}
