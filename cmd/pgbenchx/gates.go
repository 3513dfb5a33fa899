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

// checkGates prints every verdict and fails with exit 3 if any failed.
func checkGates(w io.Writer, v []report.Verdict) error {
	if len(v) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\n--fail-if:")
	_ = report.WriteVerdicts(w, v)
	failed := 0
	for _, x := range v {
		if !x.Pass {
			failed++
		}
	}
	if failed > 0 {
		return cli.Exit(fmt.Sprintf("--fail-if: %d of %d conditions failed", failed, len(v)), exitGateFailed)
	}
	return nil
}
