package routing

import (
	"testing"
	"time"
)

// benchConfig is a primary and three standbys, every standby within lag
// and past MinLSN 500, so each strategy takes its normal path.
func benchConfig(s Strategy) Config {
	cfg := Config{Nodes: nodes3, MaxLagBytes: 1 << 20, MaxLagTime: time.Second, Lag: viewOf(allWithin())}
	if s == Random {
		cfg.Weights = map[string]float64{"standby1": 2, "standby2": 1, "standby3": 1}
	}
	return cfg
}

func BenchmarkPick(b *testing.B) {
	for _, s := range All {
		b.Run(string(s), func(b *testing.B) {
			bal := mustNew(b, s, benchConfig(s))
			req := Request{MinLSN: 500}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i, err := bal.Pick(req)
					if err != nil {
						b.Error(err)
						return
					}
					bal.Done(i, OK)
				}
			})
		})
	}
}

// With a node ejected, each pick also reads the clock to see whether the
// ejection has ended.
func BenchmarkPickEjected(b *testing.B) {
	bal := mustNew(b, RoundRobin, Config{Nodes: nodes3, EjectFor: time.Hour})
	load(b, bal, standby1, 1)
	bal.Done(standby1, ConnError)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i, err := bal.Pick(Request{})
			if err != nil {
				b.Error(err)
				return
			}
			bal.Done(i, OK)
		}
	})
}
