package routing

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeView is a LagView the test sets round by round.
type fakeView struct {
	mu    sync.Mutex
	lags  map[string]Lag
	seq   atomic.Uint64
	reads atomic.Int64 // Lag calls, to check that picks do not consult the view
}

func (f *fakeView) Lag(node string) (Lag, bool) {
	f.reads.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.lags[node]
	return l, ok
}

func (f *fakeView) Seq() uint64 { return f.seq.Load() }

// publish makes a new round of samples; a node left out is unknown.
func (f *fakeView) publish(lags map[string]Lag) {
	f.mu.Lock()
	f.lags = lags
	f.mu.Unlock()
	f.seq.Add(1)
}

func viewOf(lags map[string]Lag) *fakeView {
	v := &fakeView{}
	v.publish(lags)
	return v
}

// fakeClock is Config.Now under the test's control.
type fakeClock struct{ ns atomic.Int64 }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

const (
	primary  = 0
	standby1 = 1
	standby2 = 2
	standby3 = 3
)

var (
	nodes2 = []string{"primary", "standby1", "standby2"}
	nodes3 = []string{"primary", "standby1", "standby2", "standby3"}
)

func bit(i ...int) uint64 {
	var m uint64
	for _, n := range i {
		m |= 1 << n
	}
	return m
}

// except is an Exclude mask that leaves only node i.
func except(i int) uint64 { return ^bit(i) }

func mustNew(t testing.TB, s Strategy, cfg Config) Balancer {
	t.Helper()
	b, err := New(s, cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", s, err)
	}
	return b
}

// spread makes n picks, each done at once, and counts them per node.
func spread(t testing.TB, b Balancer, nodes, n int, req Request) []int {
	t.Helper()
	got := make([]int, nodes)
	for range n {
		i, err := b.Pick(req)
		if err != nil {
			t.Fatalf("Pick(%+v): %v", req, err)
		}
		got[i]++
		b.Done(i, OK)
	}
	return got
}

// pickOnce picks and releases, returning the node or -1 on ErrNoTarget.
func pickOnce(t testing.TB, b Balancer, req Request) int {
	t.Helper()
	i, err := b.Pick(req)
	if err == ErrNoTarget {
		return -1
	}
	if err != nil {
		t.Fatalf("Pick: %v", err)
	}
	b.Done(i, OK)
	return i
}

// load leaves n reads in flight on node i, steering the picks with Exclude.
func load(t testing.TB, b Balancer, i, n int) {
	t.Helper()
	for range n {
		got, err := b.Pick(Request{Exclude: except(i)})
		if err != nil || got != i {
			t.Fatalf("loading node %d: picked %d, %v", i, got, err)
		}
	}
}

// within reports whether got is want ± tol (a fraction of want).
func within(got, want int, tol float64) bool {
	d := float64(got - want)
	return d <= tol*float64(want) && -d <= tol*float64(want)
}

// allWithin is lag every standby of nodes3 can take.
func allWithin() map[string]Lag {
	return map[string]Lag{
		"standby1": {Bytes: 10, ReplayLSN: 1000, TimeKnown: true, Time: time.Millisecond},
		"standby2": {Bytes: 10, ReplayLSN: 1000, TimeKnown: true, Time: time.Millisecond},
		"standby3": {Bytes: 10, ReplayLSN: 1000, TimeKnown: true, Time: time.Millisecond},
	}
}
