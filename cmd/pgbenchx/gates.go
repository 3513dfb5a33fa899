package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v3"

	"github.com/pgbenchx/pgbenchx/report"
)

// exitGateFailed is distinct from bad input (2) so a pipeline can tell a
// budget overrun from a typo.
const exitGateFailed = 3

// thresholdFlagName is the flag's name: k6's word for conditions that
// must hold.
const thresholdFlagName = "threshold"

// thresholdFlag is --threshold for run, matrix, compare and report; usage
// says what it judges there, with an example.
func thresholdFlag(usage string) *cli.StringFlag {
	return &cli.StringFlag{Name: thresholdFlagName, Usage: usage}
}

// gateOn is what a command's thresholds judge: compare and matrix put
// runs side by side (scaling is theirs); run and report judge one run.
// It goes by the command's name so that parseRunFlags, which run and
// matrix share, can parse --threshold for either.
func gateOn(cmd *cli.Command) report.GateOn {
	switch cmd.Name {
	case "compare", "matrix":
		return report.GateOnComparison
	}
	return report.GateOnRun
}

// parseThresholds reads --threshold for cmd; nil when it is not given. A
// bad condition, or one that means nothing for the command (scaling on
// one run), is bad input: exit 2, one line naming --threshold.
func parseThresholds(cmd *cli.Command) ([]report.Gate, error) {
	s := cmd.String(thresholdFlagName)
	if s == "" && !cmd.IsSet(thresholdFlagName) {
		return nil, nil
	}
	return report.ParseGates(s, gateOn(cmd))
}

// thresholdHelp is the paragraph a command's --help gives --threshold,
// and the exit codes. forComparison adds scaling (compare and matrix).
func thresholdHelp(forComparison bool) string {
	scaling, every := "", "every strategy"
	if forComparison {
		every = "every cell (strategy x standby count)"
		scaling = `
  scaling                 QPS with N standbys / QPS with the fewest, per
                          strategy (none for open-loop runs: --rate sets their QPS)`
	}
	return `Thresholds: --threshold takes conditions that must hold, comma-separated,
each [SCOPE:]METRIC OP VALUE with OP one of < <= > >= = !=, e.g.
  --threshold "p99<5ms,stale<1%,errors=0"
  --threshold "lag-aware:p99<5ms,standby2:stale<1%,failed=0"
METRIC is one of:
  p50 p90 p99 p999 max    latency: us (or µs), ms (the default), s, m or h
  qps                     successful reads per second
  stale                   share of stale reads: 1% or 0.01
  errors                  failed attempts on nodes plus reads no node could take;
                          with %, a rate: errors<0.1% of the attempts
  failed                  reads that failed on every try (a strategy's, not a node's);
                          with %, a rate: failed<0.1% of the reads
  retries                 attempts made after a try failed on another node
  lag_ms lag_bytes        largest lag sample of a standby (bytes: B kB KiB MB MiB GB GiB)` + scaling + `
Without SCOPE a condition must hold for ` + every + `;
lag-aware:... limits it to one strategy, standby2:... to that node's own
figures wherever it was measured. A scope naming no strategy or node of the
runs is a failed condition, as is a figure that was not measured. Each
condition's verdict is printed.

Exit codes: 0 ok, 1 the run failed, 2 bad input (nothing was started or
written), 3 a --threshold failed, 130 interrupted (what was measured is written).`
}

// checkGates prints every verdict under "--threshold:" and fails with
// exit 3 if any failed.
// conclude ends a command that measured and wrote its files: a failed
// run's error; else the thresholds' verdicts, printed; an interrupted
// run exits 130 whatever they say (it did not run as asked), covered
// naming what its figures cover.
func conclude(w io.Writer, runErr error, v []report.Verdict, interrupted bool, covered string) error {
	if runErr != nil {
		return runErr
	}
	gateErr := checkGates(w, v)
	if interrupted {
		return cli.Exit("interrupted: "+covered+" measured before Ctrl-C", exitInterrupted)
	}
	return gateErr
}

func checkGates(w io.Writer, v []report.Verdict) error {
	if len(v) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\n--threshold:")
	_ = report.WriteVerdicts(w, v)
	failed := 0
	for _, x := range v {
		if !x.Pass {
			failed++
		}
	}
	if failed > 0 {
		return cli.Exit(fmt.Sprintf("--threshold: %d of %d conditions failed", failed, len(v)), exitGateFailed)
	}
	return nil
}
