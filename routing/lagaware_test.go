package routing

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// eligible picks many times and returns the nodes that were picked, sorted,
// or nil if the pick failed with ErrNoTarget.
func eligible(t *testing.T, b Balancer, req Request) []int {
	t.Helper()
	var got []int
	for range 20 {
		i := pickOnce(t, b, req)
		if i < 0 {
			return nil
		}
		if !slices.Contains(got, i) {
			got = append(got, i)
		}
	}
	slices.Sort(got)
	return got
}

func TestLagAwareLimits(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name     string
		maxBytes int64
		maxTime  time.Duration
		lags     map[string]Lag
		want     []int
	}{
		{"both within", 1000, 0, map[string]Lag{"standby1": {Bytes: 1000}, "standby2": {Bytes: 0}},
			[]int{standby1, standby2}},
		{"over bytes", 1000, 0, map[string]Lag{"standby1": {Bytes: 1001}, "standby2": {Bytes: 5}},
			[]int{standby2}},
		{"over time", 0, 100 * ms, map[string]Lag{
			"standby1": {TimeKnown: true, Time: 101 * ms}, "standby2": {TimeKnown: true, Time: 100 * ms}},
			[]int{standby2}},
		{"unknown time counts as over a time limit", 0, 100 * ms, map[string]Lag{
			"standby1": {Bytes: 0}, "standby2": {TimeKnown: true, Time: ms}},
			[]int{standby2}},
		{"unknown time is fine without a time limit", 1000, 0, map[string]Lag{
			"standby1": {Bytes: 0}, "standby2": {Bytes: 0}},
			[]int{standby1, standby2}},
		{"both limits: over either is over", 1000, 100 * ms, map[string]Lag{
			"standby1": {Bytes: 10, TimeKnown: true, Time: 200 * ms},
			"standby2": {Bytes: 2000, TimeKnown: true, Time: ms}},
			[]int{primary}},
		{"unknown lag is over, not zero", 1000, 0, map[string]Lag{"standby2": {Bytes: 5}},
			[]int{standby2}},
		{"none within: primary", 1000, 0, map[string]Lag{"standby1": {Bytes: 5000}, "standby2": {Bytes: 5000}},
			[]int{primary}},
		{"unknown bytes are over a byte limit", 1000, 0, map[string]Lag{
			"standby1": {BytesUnknown: true, TimeKnown: true}, "standby2": {Bytes: 5}},
			[]int{standby2}},
		{"unknown bytes are fine under a time limit alone", 0, 100 * ms, map[string]Lag{
			"standby1": {BytesUnknown: true, TimeKnown: true, Time: ms}, "standby2": {TimeKnown: true, Time: ms}},
			[]int{standby1, standby2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustNew(t, LagAware, Config{Nodes: nodes2, MaxLagBytes: tt.maxBytes, MaxLagTime: tt.maxTime,
				Lag: viewOf(tt.lags)})
			if got := eligible(t, b, Request{}); !slices.Equal(got, tt.want) {
				t.Errorf("picked %v, want %v", got, tt.want)
			}
		})
	}
}

// Standby1 goes through rounds of samples; after each, a pick that may use
// only standby1 or the primary shows whether standby1 is in.
func TestLagAwareHysteresis(t *testing.T) {
	const (
		in  = true
		out = false
	)
	under, over, unknown := Lag{Bytes: 100}, Lag{Bytes: 5000}, Lag{}
	type round struct {
		lag   Lag
		known bool
		want  bool
	}
	tests := []struct {
		name   string
		k      int
		rounds []round
	}{
		{"flapping for fewer than K rounds stays in", 3, []round{
			{under, true, in}, {over, true, in}, {over, true, in}, {under, true, in},
			{over, true, in}, {under, true, in}, {over, true, in}, {over, true, in}}},
		{"leaves after K over, comes back after K under", 3, []round{
			{under, true, in}, {over, true, in}, {over, true, in}, {over, true, out},
			{under, true, out}, {under, true, out}, {over, true, out},
			{under, true, out}, {under, true, out}, {under, true, in}}},
		{"first sample over: out at once", 3, []round{
			{over, true, out}, {under, true, out}, {under, true, out}, {under, true, in}}},
		{"unknown before the first sample, then in at once", 3, []round{
			{unknown, false, out}, {unknown, false, out}, {under, true, in}}},
		{"unknown counts as over", 3, []round{
			{under, true, in}, {unknown, false, in}, {unknown, false, in}, {unknown, false, out}}},
		{"K=1 follows every sample", 1, []round{
			{under, true, in}, {over, true, out}, {under, true, in}, {unknown, false, out}}},
		{"default K is 3", 0, []round{
			{under, true, in}, {over, true, in}, {over, true, in}, {over, true, out}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			view := &fakeView{}
			b := mustNew(t, LagAware, Config{Nodes: nodes2, MaxLagBytes: 1000, Hysteresis: tt.k, Lag: view})
			only1 := Request{Exclude: bit(standby2)}
			for n, r := range tt.rounds {
				lags := map[string]Lag{"standby2": under}
				if r.known {
					lags["standby1"] = r.lag
				}
				view.publish(lags)
				// Several picks per round: a round must count once, however
				// many picks see it.
				for range 5 {
					if got := pickOnce(t, b, only1) == standby1; got != r.want {
						t.Fatalf("round %d (%+v known=%v): standby1 in = %v, want %v", n+1, r.lag, r.known, got, r.want)
					}
				}
			}
		})
	}
}

func TestLagAwareReadsViewOncePerRound(t *testing.T) {
	view := viewOf(allWithin())
	b := mustNew(t, LagAware, Config{Nodes: nodes3, MaxLagBytes: 1000, Lag: view})
	before := view.reads.Load()
	spread(t, b, 4, 1000, Request{})
	if got := view.reads.Load() - before; got != 0 {
		t.Errorf("%d Lag calls for 1000 picks in one round, want 0", got)
	}
	view.publish(allWithin())
	spread(t, b, 4, 1000, Request{})
	if got := view.reads.Load() - before; got != 3 {
		t.Errorf("%d Lag calls after one new round, want 3 (one per standby)", got)
	}
}

func TestLagAwareFallback(t *testing.T) {
	allOver := map[string]Lag{"standby1": {Bytes: 9000}, "standby2": {Bytes: 7000}, "standby3": {Bytes: 8000}}
	unknownOnly := map[string]Lag{}
	tests := []struct {
		name     string
		fallback Fallback
		lags     map[string]Lag
		req      Request
		eject    []int
		want     int // -1: ErrNoTarget
	}{
		{"primary", FallbackPrimary, allOver, Request{}, nil, primary},
		{"default is primary", "", allOver, Request{}, nil, primary},
		{"primary, but excluded", FallbackPrimary, allOver, Request{Exclude: bit(primary)}, nil, -1},
		{"primary, but ejected", FallbackPrimary, allOver, Request{}, []int{primary}, -1},
		{"least-lagged", FallbackLeastLagged, allOver, Request{}, nil, standby2},
		{"least-lagged skips an excluded standby", FallbackLeastLagged, allOver, Request{Exclude: bit(standby2)}, nil, standby3},
		{"least-lagged skips an ejected standby", FallbackLeastLagged, allOver, Request{}, []int{standby2}, standby3},
		{"least-lagged with no known lag: primary", FallbackLeastLagged, unknownOnly, Request{}, nil, primary},
		{"least-lagged ignores unknown lag", FallbackLeastLagged, map[string]Lag{"standby3": {Bytes: 1 << 40}}, Request{}, nil, standby3},
		{"error", FallbackError, allOver, Request{}, nil, -1},
		{"error when the standbys within are ejected", FallbackError,
			map[string]Lag{"standby1": {Bytes: 1}, "standby2": {Bytes: 1}, "standby3": {Bytes: 9000}}, Request{},
			[]int{standby1, standby2}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustNew(t, LagAware, Config{Nodes: nodes3, MaxLagBytes: 1000, Fallback: tt.fallback,
				Lag: viewOf(tt.lags), Now: newClock().now})
			for _, i := range tt.eject {
				load(t, b, i, 1)
				b.Done(i, ConnError)
			}
			for range 5 {
				i, err := b.Pick(tt.req)
				if tt.want < 0 {
					if !errors.Is(err, ErrNoTarget) {
						t.Fatalf("Pick = %d, %v; want ErrNoTarget", i, err)
					}
					continue
				}
				if err != nil || i != tt.want {
					t.Fatalf("Pick = %d, %v; want %d", i, err, tt.want)
				}
				b.Done(i, OK)
			}
		})
	}
}

func TestLagAwareLeastLoadedAndReadPrimary(t *testing.T) {
	lags := map[string]Lag{"standby1": {Bytes: 1}, "standby2": {Bytes: 1}, "standby3": {Bytes: 5000}}
	b := mustNew(t, LagAware, Config{Nodes: nodes3, MaxLagBytes: 1000, Lag: viewOf(lags)})
	load(t, b, standby1, 2)
	if got := pickOnce(t, b, Request{}); got != standby2 {
		t.Errorf("picked %d, want the less loaded standby2", got)
	}

	b = mustNew(t, LagAware, Config{Nodes: nodes3, MaxLagBytes: 1000, ReadPrimary: true, Lag: viewOf(lags)})
	if got := eligible(t, b, Request{}); !slices.Equal(got, []int{primary, standby1, standby2}) {
		t.Errorf("picked %v, want the primary as a normal target beside the standbys within", got)
	}
}

func TestCausal(t *testing.T) {
	lags := map[string]Lag{
		"standby1": {ReplayLSN: 100, Bytes: 1 << 30}, // far behind in bytes, but causal only asks for the LSN
		"standby2": {ReplayLSN: 200},
	}
	tests := []struct {
		name        string
		readPrimary bool
		lags        map[string]Lag
		req         Request
		eject       []int
		want        []int // nil: ErrNoTarget
	}{
		{"no write yet: any standby", false, lags, Request{}, nil, []int{standby1, standby2}},
		{"no write yet: unknown lag is fine", false, map[string]Lag{}, Request{}, nil, []int{standby1, standby2}},
		{"both replayed", false, lags, Request{MinLSN: 100}, nil, []int{standby1, standby2}},
		{"only standby2 replayed", false, lags, Request{MinLSN: 150}, nil, []int{standby2}},
		{"exactly at MinLSN", false, lags, Request{MinLSN: 200}, nil, []int{standby2}},
		{"none replayed: primary", false, lags, Request{MinLSN: 250}, nil, []int{primary}},
		{"unknown is not replayed", false, map[string]Lag{"standby1": {ReplayLSN: 300}}, Request{MinLSN: 1}, nil, []int{standby1}},
		{"read primary is a normal target", true, lags, Request{MinLSN: 150}, nil, []int{primary, standby2}},
		{"replayed standby excluded: primary", false, lags, Request{MinLSN: 150, Exclude: bit(standby2)}, nil, []int{primary}},
		{"replayed standby ejected: primary", false, lags, Request{MinLSN: 150}, []int{standby2}, []int{primary}},
		{"primary excluded too", false, lags, Request{MinLSN: 250, Exclude: bit(primary)}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustNew(t, Causal, Config{Nodes: nodes2, ReadPrimary: tt.readPrimary, Lag: viewOf(tt.lags), Now: newClock().now})
			for _, i := range tt.eject {
				load(t, b, i, 1)
				b.Done(i, ConnError)
			}
			if got := eligible(t, b, tt.req); !slices.Equal(got, tt.want) {
				t.Errorf("picked %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCausalFollowsNewRounds(t *testing.T) {
	view := viewOf(map[string]Lag{"standby1": {ReplayLSN: 100}, "standby2": {ReplayLSN: 100}})
	b := mustNew(t, Causal, Config{Nodes: nodes2, Lag: view})
	req := Request{MinLSN: 150}
	if got := pickOnce(t, b, req); got != primary {
		t.Fatalf("picked %d before any standby replayed 150, want the primary", got)
	}
	view.publish(map[string]Lag{"standby1": {ReplayLSN: 160}, "standby2": {ReplayLSN: 120}})
	if got := pickOnce(t, b, req); got != standby1 {
		t.Errorf("picked %d after standby1 replayed 160, want standby1", got)
	}
}

func TestCausalUsesObservedReplay(t *testing.T) {
	view := viewOf(map[string]Lag{"standby1": {ReplayLSN: 100}, "standby2": {ReplayLSN: 100}})
	b := mustNew(t, Causal, Config{Nodes: nodes2, Lag: view})
	req := Request{MinLSN: 150}
	if got := pickOnce(t, b, req); got != primary {
		t.Fatalf("picked %d before any standby replayed 150, want the primary", got)
	}
	// A read on standby2 saw it at 170: no need to wait for the next round.
	b.(ReplayObserver).ObserveReplay(standby2, 170)
	if got := pickOnce(t, b, req); got != standby2 {
		t.Errorf("picked %d after a read saw standby2 at 170, want standby2", got)
	}
	// An older round must not move the known position back.
	view.publish(map[string]Lag{"standby1": {ReplayLSN: 110}, "standby2": {ReplayLSN: 120}})
	if got := pickOnce(t, b, req); got != standby2 {
		t.Errorf("picked %d after a stale round, want standby2 still", got)
	}
	b.(ReplayObserver).ObserveReplay(standby1, 90) // lower than known: ignored
	if got := pickOnce(t, b, Request{MinLSN: 105}); got != standby1 && got != standby2 {
		t.Errorf("picked %d", got)
	}
}
