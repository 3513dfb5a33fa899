package env_test

import (
	"context"
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/env/envtest"
)

// BenchmarkUpTwoStandbys times `env up --standbys 2`, with --fast and with
// the durable defaults; `down` is outside the timer. The template is made
// before the timer starts, as on every `up` after a machine's first.
func BenchmarkUpTwoStandbys(b *testing.B) {
	for _, tc := range []struct {
		name string
		fast bool
	}{{"fast", true}, {"defaults", false}} {
		b.Run(tc.name, func(b *testing.B) {
			p := envtest.Provider(b)
			ctx := context.Background()
			spec := env.Spec{Name: "bench", Standbys: 2, Fast: tc.fast}
			if _, err := p.Up(ctx, spec); err != nil { // warms the template cache
				b.Fatal(err)
			}
			if err := p.Down(ctx, "bench"); err != nil {
				b.Fatal(err)
			}
			var total time.Duration
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				c, err := p.Up(ctx, spec)
				if err != nil {
					b.Fatal(err)
				}
				total += time.Since(t0)
				b.StopTimer()
				if err := p.Down(ctx, c.Name); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/up")
		})
	}
}
