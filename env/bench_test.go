package env_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/env/envtest"
)

// BenchmarkUp prints how long `env up` takes with 2 standbys, fsync on
// (the defaults) and --fast, the same with 8 standbys, and from those the
// time each extra standby adds: (t8 - t2) / 6. Each iteration is one round
// through the four shapes, interleaved so that a noisy moment on a shared
// machine hits all of them; the figures are medians over the rounds
// (-benchtime 5x: five rounds). `down` is outside the timer, and the
// template is cached before the first round, as on every `up` after a
// machine's first.
func BenchmarkUp(b *testing.B) {
	shapes := []struct {
		standbys int
		fast     bool
	}{{2, false}, {2, true}, {8, false}, {8, true}}
	p := envtest.Provider(b)
	ctx := context.Background()
	if _, err := p.Up(ctx, env.Spec{Name: "bench", Fast: true}); err != nil { // caches the template
		b.Fatal(err)
	}
	if err := p.Down(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	took := make([][]time.Duration, len(shapes))
	for b.Loop() {
		for i, s := range shapes {
			t0 := time.Now()
			c, err := p.Up(ctx, env.Spec{Name: "bench", Standbys: s.standbys, Fast: s.fast})
			if err != nil {
				b.Fatal(err)
			}
			took[i] = append(took[i], time.Since(t0))
			b.StopTimer()
			if err := p.Down(ctx, c.Name); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	med := make([]float64, len(shapes))
	for i := range shapes {
		med[i] = median(took[i]).Seconds()
	}
	var out strings.Builder
	fmt.Fprintf(&out, "env up, seconds, median of %d round(s):\n", len(took[0]))
	fmt.Fprintf(&out, "  %-10s %8s %8s %14s\n", "", "2 sb", "8 sb", "per extra sb")
	for i, mode := range []string{"fsync on", "--fast"} {
		t2, t8 := med[i], med[i+2]
		fmt.Fprintf(&out, "  %-10s %8.3f %8.3f %14.3f\n", mode, t2, t8, (t8-t2)/6)
	}
	b.Log(out.String())
	b.ReportMetric(med[0], "s/up-2sb-fsync")
	b.ReportMetric(med[1], "s/up-2sb-fast")
	b.ReportMetric((med[2]-med[0])/6, "s/extra-sb-fsync")
	b.ReportMetric((med[3]-med[1])/6, "s/extra-sb-fast")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
