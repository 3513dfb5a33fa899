package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/routing"
)

// progress prints what a run is doing: a bar for the write phase on a
// terminal, plain lines otherwise, and one live line a second while reads run.
type progress struct {
	w        io.Writer
	tty      bool
	bar      *progressbar.ProgressBar
	lastLine time.Time
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) phase(msg string) { fmt.Fprintf(p.w, "== %s\n", msg) }

func (p *progress) write(done, total int) {
	if p.tty {
		if p.bar == nil {
			p.bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(p.w), progressbar.OptionSetDescription("rows"),
				progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("rows"), progressbar.OptionClearOnFinish())
		}
		_ = p.bar.Set(done)
		if done >= total {
			_ = p.bar.Finish()
			fmt.Fprintln(p.w)
		}
		return
	}
	if time.Since(p.lastLine) >= time.Second || done >= total {
		fmt.Fprintf(p.w, "   %d/%d rows\n", done, total)
		p.lastLine = time.Now()
	}
}

func (p *progress) live(strategy routing.Strategy, elapsed time.Duration, t metrics.Tick) {
	var lag []string
	for _, n := range sortedNames(t.LagBytes, t.LagMS) {
		b, ms := "?", "?"
		if v, ok := t.LagBytes[n]; ok {
			b = env.FormatBytes(v)
		}
		if v, ok := t.LagMS[n]; ok {
			ms = fmt.Sprintf("%.0fms", v)
		}
		lag = append(lag, fmt.Sprintf("%s %s/%s", n, b, ms))
	}
	fmt.Fprintf(p.w, "   [%s] %3.0fs  %6d qps  p50 %.2fms  p99 %.2fms  errors %d  failed %d  lag: %s\n",
		strategy, elapsed.Seconds(), t.Queries, t.P50MS, t.P99MS, t.Errors, t.Failed, strings.Join(lag, ", "))
}

func sortedNames(a map[string]int64, b map[string]float64) []string {
	seen := map[string]bool{}
	var out []string
	for k := range a {
		seen[k] = true
		out = append(out, k)
	}
	for k := range b {
		if !seen[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
