// Command pgbenchx builds an env (a PostgreSQL primary plus N streaming
// standbys), benchmarks reads routed across it, and reports latency,
// throughput, replica lag and stale reads.
//
// This package maps flags to package bench's Config and prints results:
// one file per subcommand, no logic of its own. The work is done by
// bench (the library) over env, workload, routing, probe, metrics and
// report.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"syscall"

	"github.com/urfave/cli/v3"

	"github.com/pgbenchx/pgbenchx/bench"
	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/input"
)

// Exit codes, the same for every command: 0 ok, 1 the run failed (a
// check failed, a server error), 2 bad input (nothing was started or
// written), 3 a --threshold failed, 130 interrupted (what was measured is
// written).
const (
	exitFailure     = 1
	exitBadInput    = 2
	exitInterrupted = 130
)

const exitCodesHelp = `Exit codes: 0 ok, 1 the run failed, 2 bad input (nothing was started or
written), 3 a --threshold failed, 130 interrupted (what was measured is written).`

// argvKey holds the command line in the context: run.json records it.
type argvKey struct{}

// commandLine is the command line the context carries.
func commandLine(ctx context.Context) []string {
	args, _ := ctx.Value(argvKey{}).([]string)
	return args
}

// usageError marks errors that come from what the user typed.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func init() {
	cli.VersionPrinter = func(cmd *cli.Command) {
		fmt.Fprintln(cmd.Root().Writer, bench.VersionLine())
	}
}

func main() {
	// An env's link proxy is this binary too (env up --net-delay).
	env.ServeNetIfAsked()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// PGBENCHX_CPUPROFILE=file writes a CPU profile of the whole command,
	// for `go tool pprof`: where the load generator's time goes.
	if path := os.Getenv("PGBENCHX_TRACE"); path != "" {
		if f, err := os.Create(path); err == nil && trace.Start(f) == nil {
			code := run(ctx, os.Args, os.Stdout, os.Stderr)
			trace.Stop()
			f.Close()
			os.Exit(code)
		}
	}
	if path := os.Getenv("PGBENCHX_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
			code := run(ctx, os.Args, os.Stdout, os.Stderr)
			pprof.StopCPUProfile()
			f.Close()
			os.Exit(code)
		}
	}
	os.Exit(run(ctx, os.Args, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := rootCommand(stdout, stderr)
	err := root.Run(context.WithValue(ctx, argvKey{}, args), args)
	if err == nil {
		return 0
	}
	var code cli.ExitCoder
	if errors.As(err, &code) && code.ExitCode() != exitFailure {
		if msg := err.Error(); msg != "" {
			fmt.Fprintf(stderr, "pgbenchx: %s\n", msg)
		}
		return code.ExitCode()
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		// Ctrl-C before anything was measured: not a failure of the run.
		// What else went wrong meanwhile (a cleanup that failed) is said.
		if msg := err.Error(); msg != context.Canceled.Error() {
			fmt.Fprintf(stderr, "pgbenchx: interrupted: %s\n", msg)
		} else {
			fmt.Fprintln(stderr, "pgbenchx: interrupted")
		}
		return exitInterrupted
	}
	fmt.Fprintf(stderr, "pgbenchx: %s\n", err)
	if isBadInput(err) {
		return exitBadInput
	}
	return exitFailure
}

var (
	singleDashFlag = regexp.MustCompile(`(^|flag |: )-([a-z][a-z0-9-]*)`)
	strconvDetail  = regexp.MustCompile(`: strconv\.Parse\w+: parsing "[^"]*": (invalid syntax|value out of range)`)
)

// tidyParseError rewrites the flag parser's messages in our own dialect:
// flags with two dashes, and "want a number" instead of strconv's detail.
func tidyParseError(err error) string {
	msg := singleDashFlag.ReplaceAllString(err.Error(), "${1}--$2")
	return strconvDetail.ReplaceAllString(msg, ": want a number")
}

var undefinedFlag = regexp.MustCompile(`flag provided but not defined: -+([^ ]+)`)

// suggestFlag is " (did you mean --clients?)" for a mistyped flag.
func suggestFlag(cmd *cli.Command, err error) string {
	m := undefinedFlag.FindStringSubmatch(err.Error())
	if m == nil {
		return ""
	}
	var names []string
	for _, f := range cmd.Flags {
		for _, n := range f.Names() {
			if len(n) > 1 { // -c is a pgbench habit, not a likely typo's target
				names = append(names, n)
			}
		}
	}
	if s := closest(m[1], names); s != "" {
		return fmt.Sprintf(" (did you mean --%s?)", s)
	}
	return ""
}

// suggestCommand is ` (did you mean "run"?)` for a mistyped command.
func suggestCommand(cmd *cli.Command, word string) string {
	var names []string
	for _, sub := range cmd.Commands {
		if !sub.Hidden {
			names = append(names, sub.Names()...)
		}
	}
	if s := closest(word, names); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

// closest is the candidate nearest to typed when it is near enough to
// be what was meant: at most one edit (a swap of two letters is one) per
// three letters, else "".
func closest(typed string, candidates []string) string {
	best, bestD := "", max(1, len(typed)/3)+1
	for _, c := range candidates {
		if d := editDistance(typed, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance counts the insertions, deletions, substitutions and swaps
// of adjacent letters that turn a into b (optimal string alignment).
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

func isBadInput(err error) bool {
	var ue usageError
	return errors.As(err, &ue) || input.Is(err)
}

func rootCommand(stdout, stderr io.Writer) *cli.Command {
	root := &cli.Command{
		Name:  "pgbenchx",
		Usage: "a replicated PostgreSQL env in seconds, and honest numbers on reads spread across standbys",
		Description: `pgbenchx provisions a PostgreSQL primary plus N streaming standbys (or uses
an existing cluster), drives writes on the primary and reads through routing
strategies, and reports latency, throughput, replica lag and stale reads.

Examples:
  pgbenchx env up --standbys 2          # primary + 2 standbys on this machine
  pgbenchx env verify                   # the manual lab's success criteria
  psql "$(pgbenchx env dsn --node standby1)"
  pgbenchx env down

` + exitCodesHelp,
		Version:   bench.Version(),
		Writer:    stdout,
		ErrWriter: stderr,
		// pgbenchx completion bash|zsh|fish prints a script to source.
		EnableShellCompletion: true,
		ConfigureShellCompletionCommand: func(c *cli.Command) {
			c.Hidden = false
			c.Usage = "print a shell completion script: source <(pgbenchx completion bash), or zsh, fish"
			setUsageErrors(c) // completion tcsh: bad input, not urfave's exit 3
		},
		Suggest: true,
		// We print errors and choose exit codes ourselves (see run).
		ExitErrHandler: func(context.Context, *cli.Command, error) {},
		Commands:       []*cli.Command{envCommand(), runCommand(), matrixCommand(), capacityCommand(), compareCommand(), mergeCommand(), reportCommand(), cleanCommand()},
	}
	setUsageErrors(root)
	return root
}

// unknownCommand is the action of a command that only groups others: with
// no word it shows its help, with a word it names nothing it knows, which
// is bad input (urfave's default would exit 3, a failed threshold's code).
func unknownCommand(_ context.Context, cmd *cli.Command) error {
	if cmd.Args().Len() == 0 {
		return cli.ShowSubcommandHelp(cmd)
	}
	var names []string
	for _, sub := range cmd.Commands {
		if !sub.Hidden && sub.Name != "help" {
			names = append(names, sub.Name)
		}
	}
	word := cmd.Args().First()
	return usageError{fmt.Errorf("unknown command %q%s: %s takes %s (see: %s --help)",
		word, suggestCommand(cmd, word), cmd.FullName(), strings.Join(names, ", "), cmd.FullName())}
}

// setUsageErrors makes every parse error (unknown flag, a word where a
// number goes) a one-line usage error with exit code 2, not a help dump.
func setUsageErrors(c *cli.Command) {
	if len(c.Commands) > 0 && c.Action == nil {
		c.Action = unknownCommand
	}
	c.OnUsageError = func(_ context.Context, cmd *cli.Command, err error, _ bool) error {
		return usageError{fmt.Errorf("%s: %s%s (see: %s --help)", cmd.FullName(), tidyParseError(err), suggestFlag(cmd, err), cmd.FullName())}
	}
	for _, sub := range c.Commands {
		setUsageErrors(sub)
	}
}
