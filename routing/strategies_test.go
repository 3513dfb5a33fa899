package routing

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestRoundRobinSpreadsEvenly(t *testing.T) {
	tests := []struct {
		name        string
		nodes       []string
		readPrimary bool
		eject       []int
		exclude     uint64
		picks       int
		want        []int
	}{
		{"two standbys", nodes2, false, nil, 0, 1000, []int{0, 500, 500}},
		{"read primary too", nodes2, true, nil, 0, 999, []int{333, 333, 333}},
		{"one of three ejected: the other two share it", nodes3, false, []int{standby2}, 0, 1000, []int{0, 500, 0, 500}},
		{"one of three excluded", nodes3, false, nil, bit(standby1), 1000, []int{0, 0, 500, 500}},
		{"ejected primary with read primary", nodes2, true, []int{primary}, 0, 1000, []int{0, 500, 500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustNew(t, RoundRobin, Config{Nodes: tt.nodes, ReadPrimary: tt.readPrimary, Now: newClock().now})
			for _, i := range tt.eject {
				load(t, b, i, 1)
				b.Done(i, ConnError)
			}
			got := spread(t, b, len(tt.nodes), tt.picks, Request{Exclude: tt.exclude})
			if !slices.Equal(got, tt.want) {
				t.Errorf("picks per node %v, want %v", got, tt.want)
			}
		})
	}
}

// Every strategy must skip a node for exactly EjectFor after a connection
// error, then try it again, and a plain query failure must not eject.
func TestEjection(t *testing.T) {
	for _, s := range All {
		t.Run(string(s), func(t *testing.T) {
			clock := newClock()
			var told []string
			b := mustNew(t, s, Config{Nodes: nodes2, EjectFor: 2 * time.Second, Now: clock.now,
				MaxLagBytes: 1 << 20, Lag: viewOf(allWithin()),
				Ejections: func(i int, ejected bool) { told = append(told, fmt.Sprint(nodes2[i], " ", ejected)) }})
			only1 := Request{Exclude: bit(standby2)}

			load(t, b, standby1, 1)
			b.Done(standby1, Failed)
			if got := pickOnce(t, b, only1); got != standby1 {
				t.Fatalf("after Failed picked %d, want standby1 still in", got)
			}

			load(t, b, standby1, 2)
			b.Done(standby1, ConnError)
			b.Done(standby1, ConnError) // a second read's error: still one ejection
			for range 100 {
				if got := pickOnce(t, b, Request{}); got == standby1 {
					t.Fatal("picked the ejected standby1")
				}
			}
			clock.advance(2*time.Second - 1)
			if got := pickOnce(t, b, Request{}); got == standby1 {
				t.Fatal("picked standby1 1ns before its ejection ends")
			}
			clock.advance(1)
			if got := pickOnce(t, b, only1); got != standby1 {
				t.Fatalf("after EjectFor picked %d, want standby1 back", got)
			}
			if want := []string{"standby1 true", "standby1 false"}; !slices.Equal(told, want) {
				t.Errorf("ejections told %q, want %q", told, want)
			}
		})
	}
}

func TestNoTarget(t *testing.T) {
	for _, s := range []Strategy{Random, RoundRobin, LeastConn} {
		t.Run(string(s), func(t *testing.T) {
			b := mustNew(t, s, Config{Nodes: nodes2, Now: newClock().now})
			if _, err := b.Pick(Request{Exclude: bit(standby1, standby2)}); !errors.Is(err, ErrNoTarget) {
				t.Errorf("all standbys excluded: err %v, want ErrNoTarget (the primary takes no reads)", err)
			}
			for _, i := range []int{standby1, standby2} {
				load(t, b, i, 1)
				b.Done(i, ConnError)
			}
			if _, err := b.Pick(Request{}); !errors.Is(err, ErrNoTarget) {
				t.Errorf("all standbys ejected: err %v, want ErrNoTarget", err)
			}
		})
	}
}

func TestRandom(t *testing.T) {
	const picks = 100_000
	tests := []struct {
		name        string
		nodes       []string
		readPrimary bool
		weights     map[string]float64
		want        []float64 // expected share per node
	}{
		{"uniform over two standbys", nodes2, false, nil, []float64{0, .5, .5}},
		{"uniform with the primary", nodes2, true, nil, []float64{1. / 3, 1. / 3, 1. / 3}},
		{"weights 2:1", nodes2, false, map[string]float64{"standby1": 2, "standby2": 1}, []float64{0, 2. / 3, 1. / 3}},
		{"weight 0 never picked", nodes3, false, map[string]float64{"standby1": 1, "standby2": 0, "standby3": 1}, []float64{0, .5, 0, .5}},
		{"absent from the weights never picked", nodes3, false, map[string]float64{"standby1": 1, "standby3": 3}, []float64{0, .25, 0, .75}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustNew(t, Random, Config{Nodes: tt.nodes, ReadPrimary: tt.readPrimary, Weights: tt.weights})
			got := spread(t, b, len(tt.nodes), picks, Request{})
			for i, share := range tt.want {
				// 3% of the expected count is over 6 standard deviations
				// for every share here: this does not flake.
				if want := int(share * picks); !within(got[i], want, 0.03) {
					t.Errorf("node %d: %d picks, want %d ± 3%% (all: %v)", i, got[i], want, got)
				}
			}
		})
	}
}

func TestRandomWeightsSkipEjected(t *testing.T) {
	b := mustNew(t, Random, Config{Nodes: nodes3, Now: newClock().now,
		Weights: map[string]float64{"standby1": 1, "standby2": 0, "standby3": 1}})
	load(t, b, standby3, 1)
	b.Done(standby3, ConnError)
	got := spread(t, b, 4, 1000, Request{})
	if !slices.Equal(got, []int{0, 1000, 0, 0}) {
		t.Errorf("picks %v: with standby3 ejected everything goes to standby1, never to the weight-0 standby2", got)
	}
	if _, err := b.Pick(Request{Exclude: bit(standby1)}); !errors.Is(err, ErrNoTarget) {
		t.Errorf("only the weight-0 standby left: err %v, want ErrNoTarget", err)
	}
}

func TestLeastConnPicksLeastBusy(t *testing.T) {
	tests := []struct {
		name        string
		readPrimary bool
		inflight    []int // per node of nodes3
		want        int
	}{
		{"standby2 idle", false, []int{0, 3, 0, 2}, standby2},
		{"standby1 least", false, []int{0, 1, 5, 2}, standby1},
		{"busy primary is not a target", false, []int{0, 4, 5, 6}, standby1},
		{"idle primary when it takes reads", true, []int{0, 1, 1, 1}, primary},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustNew(t, LeastConn, Config{Nodes: nodes3, ReadPrimary: tt.readPrimary})
			for i, n := range tt.inflight {
				if n > 0 {
					load(t, b, i, n)
				}
			}
			// Repeat so a lucky rotation cannot pass an inverted comparison.
			for range 10 {
				if got := pickOnce(t, b, Request{}); got != tt.want {
					t.Fatalf("picked %d with in-flight %v, want %d", got, tt.inflight, tt.want)
				}
			}
		})
	}
}

// Picks held open must fill the idle node first, then alternate: the
// inverted comparison (busiest first) would pile all of them on standby1.
func TestLeastConnLevelsLoad(t *testing.T) {
	b := mustNew(t, LeastConn, Config{Nodes: nodes2})
	load(t, b, standby1, 5)
	for range 15 {
		if _, err := b.Pick(Request{}); err != nil {
			t.Fatal(err)
		}
	}
	if got1, got2 := b.InFlight(standby1), b.InFlight(standby2); got1 != 10 || got2 != 10 {
		t.Errorf("in flight %d and %d, want 10 and 10", got1, got2)
	}
}

func TestLeastConnTiesTakeTurns(t *testing.T) {
	b := mustNew(t, LeastConn, Config{Nodes: nodes3})
	got := spread(t, b, 4, 999, Request{})
	if !slices.Equal(got, []int{0, 333, 333, 333}) {
		t.Errorf("picks %v with equal (zero) in flight, want 333 each", got)
	}
}

func TestInFlight(t *testing.T) {
	for _, s := range All {
		t.Run(string(s), func(t *testing.T) {
			b := mustNew(t, s, Config{Nodes: nodes2, MaxLagBytes: 1 << 20, Lag: viewOf(allWithin())})
			load(t, b, standby2, 3)
			b.Done(standby2, OK)
			if got := b.InFlight(standby2); got != 2 {
				t.Errorf("InFlight = %d after 3 picks and 1 done, want 2", got)
			}
		})
	}
}

// TestPrimaryAnywhere: the primary is whichever node the caller says, not
// the first; every strategy keeps reads off it and falls back to it.
func TestPrimaryAnywhere(t *testing.T) {
	nodes := []string{"standby1", "standby2", "primary"}
	const p = 2
	for _, s := range All {
		t.Run(string(s), func(t *testing.T) {
			view := viewOf(map[string]Lag{"standby1": {Bytes: 1 << 30}, "standby2": {Bytes: 1 << 30}})
			b, err := New(s, Config{Nodes: nodes, Primary: p, MaxLagBytes: 1 << 20, Lag: view, Hysteresis: 1})
			if err != nil {
				t.Fatal(err)
			}
			got := eligible(t, b, Request{MinLSN: 1})
			want := []int{0, 1}
			if s == LagAware || s == Causal {
				want = []int{p} // over the lag limit, or no replay position known: the fallback
			}
			if !slices.Equal(got, want) {
				t.Errorf("picked %v, want %v", got, want)
			}
		})
	}
	if _, err := New(RoundRobin, Config{Nodes: nodes, Primary: 3}); err == nil {
		t.Error("a primary index past the nodes was accepted")
	}
	if _, err := New(Strategy("fastest"), Config{Nodes: nodes}); err == nil {
		t.Error("an unknown strategy built a balancer")
	}
}

// TestSetRolesAfterFailover: standby1 promoted, the old primary gone:
// reads go to the remaining standby, fallbacks to the new primary.
func TestSetRolesAfterFailover(t *testing.T) {
	nodes := []string{"primary", "standby1", "standby2"}
	for _, s := range All {
		t.Run(string(s), func(t *testing.T) {
			view := viewOf(map[string]Lag{"standby1": {}, "standby2": {Bytes: 1 << 30}})
			b, err := New(s, Config{Nodes: nodes, MaxLagBytes: 1 << 20, Lag: view, Hysteresis: 1})
			if err != nil {
				t.Fatal(err)
			}
			b.SetRoles(standby1, bit(primary))
			view.publish(map[string]Lag{"standby2": {Bytes: 1 << 30}})
			got := eligible(t, b, Request{})
			want := []int{standby2}
			if s == LagAware {
				want = []int{standby1} // standby2 is over the limit: the new primary
			}
			if !slices.Equal(got, want) {
				t.Errorf("picked %v, want %v", got, want)
			}
			if s == Causal {
				if got := eligible(t, b, Request{MinLSN: 1}); !slices.Equal(got, []int{standby1}) {
					t.Errorf("causal with a write to read back picked %v, want the new primary", got)
				}
			}
		})
	}
}
