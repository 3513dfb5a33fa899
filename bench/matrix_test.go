package bench

import (
	"slices"
	"testing"

	"github.com/pgbenchx/pgbenchx/routing"
)

func TestStrategyOrder(t *testing.T) {
	all := []routing.Strategy{"random", "round-robin", "least-conn", "lag-aware", "causal"}
	for _, c := range []struct {
		list []routing.Strategy
		rep  int
		want []routing.Strategy
	}{
		{all, 1, all},
		{all, 2, []routing.Strategy{"round-robin", "least-conn", "lag-aware", "causal", "random"}},
		{all, 5, []routing.Strategy{"causal", "random", "round-robin", "least-conn", "lag-aware"}},
		{all, 6, all},
		{all, 8, []routing.Strategy{"least-conn", "lag-aware", "causal", "random", "round-robin"}},
		{[]routing.Strategy{"a", "b"}, 2, []routing.Strategy{"b", "a"}},
		{[]routing.Strategy{"a", "b"}, 3, []routing.Strategy{"a", "b"}},
		{[]routing.Strategy{"only"}, 4, []routing.Strategy{"only"}},
		{nil, 2, nil},
	} {
		in := slices.Clone(c.list)
		got := StrategyOrder(c.list, c.rep)
		if !slices.Equal(got, c.want) {
			t.Errorf("StrategyOrder(%v, %d) = %v, want %v", c.list, c.rep, got, c.want)
		}
		if !slices.Equal(c.list, in) {
			t.Errorf("StrategyOrder changed its input: %v", c.list)
		}
	}
	// Over as many repeats as strategies, each goes first once.
	first := map[routing.Strategy]int{}
	for rep := 1; rep <= len(all); rep++ {
		first[StrategyOrder(all, rep)[0]]++
	}
	for _, s := range all {
		if first[s] != 1 {
			t.Errorf("%s went first %d times in %d repeats", s, first[s], len(all))
		}
	}
}
