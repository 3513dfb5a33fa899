package routing

import (
	"testing"
	"time"
)

// TestNearest feeds each pick the latency of the node it went to:
// standby2 behind a slow link gets next to nothing, and once its link is
// fast again the exploration picks find it and it takes its share back.
func TestNearest(t *testing.T) {
	clock := newClock()
	b, err := New(Nearest, Config{Nodes: []string{"primary", "standby1", "standby2"}, Primary: primary, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	obs := b.(LatencyObserver)
	lat := map[int]time.Duration{standby1: 200 * time.Microsecond, standby2: 50 * time.Millisecond}
	run := func(picks int) map[int]int {
		got := map[int]int{}
		for range picks {
			n, err := b.Pick(Request{})
			if err != nil {
				t.Fatal(err)
			}
			got[n]++
			clock.advance(time.Millisecond) // 1,000 reads a second
			obs.ObserveLatency(n, lat[n])
			b.Done(n, OK)
		}
		return got
	}
	got := run(2000)
	if got[primary] != 0 {
		t.Errorf("%d reads on the primary, which takes none", got[primary])
	}
	// Tried again 4 times a second: 8 reads in 2 s, besides its first.
	if got[standby2] > 12 {
		t.Errorf("standby2 (50 ms) took %d of 2000 reads, want about 8: %v", got[standby2], got)
	}
	lat[standby2] = 150 * time.Microsecond // the link recovered
	run(500)                               // it is tried again within 250 ms
	got = run(2000)
	if share := float64(got[standby2]) / 2000; share < 0.3 {
		t.Errorf("standby2, fast again, took %.1f%% of the reads, want its share back: %v", 100*share, got)
	}
}
