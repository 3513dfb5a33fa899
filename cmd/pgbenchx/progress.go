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

// progress prints what a run is doing, on stderr as pgbench does (stdout
// keeps the results): a bar for the write phase on a terminal, plain lines
// otherwise, and a live line every --progress while reads run. --quiet
// prints none of it.
type progress struct {
	w        io.Writer
	tty      bool
	bar      *progressbar.ProgressBar
	lastLine time.Time
	every    time.Duration // live lines: one per this much measured time
	lastLive time.Duration
	quiet    bool
}

func newProgress(w io.Writer, every time.Duration, quiet bool) *progress {
	p := &progress{w: w, every: max(every, time.Second), quiet: quiet}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) phase(msg string) {
	if !p.quiet {
		fmt.Fprintf(p.w, "== %s\n", msg)
	}
	p.lastLive = 0
}

func (p *progress) write(done, total int) {
	if p.quiet {
		return
	}
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
	// Ticks come once a measured second; elapsed restarts per strategy.
	if p.quiet || (elapsed > p.lastLive && elapsed-p.lastLive < p.every-p.every/10) {
		return
	}
	if elapsed < p.lastLive {
		p.lastLive = 0
	}
	p.lastLive = elapsed
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
