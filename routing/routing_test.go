package routing

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/input"
)

func TestNewValidates(t *testing.T) {
	view := viewOf(allWithin())
	many := make([]string, 65)
	for i := range many {
		many[i] = fmt.Sprintf("n%d", i)
	}
	tests := []struct {
		name      string
		strategy  Strategy
		cfg       Config
		inputFlag string // "": a plain error
	}{
		{"unknown strategy", "ring", Config{Nodes: nodes2}, "strategies"},
		{"no nodes", RoundRobin, Config{}, ""},
		{"65 nodes", RoundRobin, Config{Nodes: many}, ""},
		{"only the primary, not read", RoundRobin, Config{Nodes: nodes2[:1]}, ""},
		{"duplicate names", RoundRobin, Config{Nodes: []string{"p", "s", "s"}}, ""},
		{"empty name", RoundRobin, Config{Nodes: []string{"p", ""}}, ""},
		{"negative EjectFor", RoundRobin, Config{Nodes: nodes2, EjectFor: -time.Second}, ""},
		{"weights name an unknown node", Random, Config{Nodes: nodes2, Weights: map[string]float64{"standby9": 1}}, "weights"},
		{"weights on a primary that takes no reads", Random,
			Config{Nodes: nodes2, Weights: map[string]float64{"primary": 1, "standby1": 1}}, "weights"},
		{"negative weight", Random, Config{Nodes: nodes2, Weights: map[string]float64{"standby1": -1, "standby2": 1}}, "weights"},
		{"no positive weight", Random, Config{Nodes: nodes2, Weights: map[string]float64{"standby1": 0}}, "weights"},
		{"lag-aware without Lag", LagAware, Config{Nodes: nodes2, MaxLagBytes: 1}, ""},
		{"lag-aware without a limit", LagAware, Config{Nodes: nodes2, Lag: view}, "max-lag"},
		{"lag-aware negative limit", LagAware, Config{Nodes: nodes2, Lag: view, MaxLagBytes: -1}, "max-lag"},
		{"lag-aware bad fallback", LagAware, Config{Nodes: nodes2, Lag: view, MaxLagBytes: 1, Fallback: "standby"}, "lag-fallback"},
		{"lag-aware negative hysteresis", LagAware, Config{Nodes: nodes2, Lag: view, MaxLagBytes: 1, Hysteresis: -1}, ""},
		{"causal without Lag", Causal, Config{Nodes: nodes2}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(tt.strategy, tt.cfg)
			if err == nil {
				t.Fatalf("New = %T, want an error", b)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("error %q is not one line", err)
			}
			if tt.inputFlag != "" {
				checkInputError(t, err, tt.inputFlag)
			} else if _, ok := err.(*input.Error); ok {
				t.Errorf("error %q is an *input.Error, want a plain error", err)
			}
		})
	}
}

func TestNewAccepts(t *testing.T) {
	view := viewOf(allWithin())
	tests := []struct {
		name     string
		strategy Strategy
		cfg      Config
	}{
		{"64 nodes", LeastConn, Config{Nodes: func() []string {
			n := make([]string, 64)
			for i := range n {
				n[i] = fmt.Sprintf("n%d", i)
			}
			return n
		}()}},
		{"only the primary, read", RoundRobin, Config{Nodes: nodes2[:1], ReadPrimary: true}},
		{"weights on a read primary", Random, Config{Nodes: nodes2, ReadPrimary: true, Weights: map[string]float64{"primary": 1}}},
		{"weights ignored by other strategies", RoundRobin, Config{Nodes: nodes2, Weights: map[string]float64{"standby9": 1}}},
		{"lag-aware time limit only", LagAware, Config{Nodes: nodes2, Lag: view, MaxLagTime: time.Second}},
		{"causal", Causal, Config{Nodes: nodes2, Lag: view}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustNew(t, tt.strategy, tt.cfg)
		})
	}
}

func TestNodesBeyond32(t *testing.T) {
	n := make([]string, 64)
	for i := range n {
		n[i] = fmt.Sprintf("n%d", i)
	}
	b := mustNew(t, RoundRobin, Config{Nodes: n})
	got := spread(t, b, 64, 63*10, Request{})
	for i := 1; i < 64; i++ {
		if got[i] != 10 {
			t.Fatalf("node %d got %d picks, want 10 (all: %v)", i, got[i], got)
		}
	}
	if got := pickOnce(t, b, Request{Exclude: except(63)}); got != 63 {
		t.Errorf("only node 63 allowed: picked %d", got)
	}
}

// Pick and Done promise no allocation: they run once per query.
func TestPickDoneDoNotAllocate(t *testing.T) {
	for _, s := range All {
		t.Run(string(s), func(t *testing.T) {
			b := mustNew(t, s, benchConfig(s))
			req := Request{MinLSN: 500}
			if got := testing.AllocsPerRun(1000, func() {
				i, err := b.Pick(req)
				if err != nil {
					t.Fatal(err)
				}
				b.Done(i, OK)
			}); got != 0 {
				t.Errorf("%v allocations per Pick+Done, want 0", got)
			}
		})
	}
}

// Concurrent picks, done calls, ejections and new lag rounds, for the race
// detector; when all is done nothing may be left in flight.
func TestConcurrent(t *testing.T) {
	for _, s := range All {
		t.Run(string(s), func(t *testing.T) {
			view := viewOf(allWithin())
			b := mustNew(t, s, Config{Nodes: nodes3, ReadPrimary: true, MaxLagBytes: 1000,
				Weights: map[string]float64{"primary": 1, "standby1": 1, "standby2": 1, "standby3": 2},
				Lag:     view, EjectFor: time.Microsecond})
			stop := make(chan struct{})
			var rounds sync.WaitGroup
			rounds.Go(func() {
				for n := int64(0); ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					lags := allWithin()
					lags["standby2"] = Lag{Bytes: 500 + n%1000, ReplayLSN: uint64(n)}
					view.publish(lags)
				}
			})
			var clients sync.WaitGroup
			for c := range 8 {
				clients.Go(func() {
					for n := range 2000 {
						i, err := b.Pick(Request{MinLSN: uint64(n), Exclude: bit(c % 4)})
						if err != nil {
							continue
						}
						o := OK
						if n%97 == 0 {
							o = ConnError
						}
						b.Done(i, o)
					}
				})
			}
			clients.Wait()
			close(stop)
			rounds.Wait()
			for i := range nodes3 {
				if got := b.InFlight(i); got != 0 {
					t.Errorf("node %d: %d in flight after every pick was done", i, got)
				}
			}
		})
	}
}
