package main

import (
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/input"
)

// Flags more than one command takes, defined once so they read the same
// everywhere. Each call makes a new flag: a cli.Flag holds its value.

// fastFlag is env up's, run's and matrix's --fast (when they provision).
func fastFlag() cli.Flag {
	return &cli.BoolFlag{Name: "fast", Usage: "fsync off, data folders in RAM: quicker, not durable; for tests and CI, not for numbers (when an env is built)"}
}

// cpusFlag caps nodes' CPU when an env is built.
func cpusFlag() cli.Flag {
	return &cli.StringFlag{Name: "cpus", Usage: "cap each node's CPU like a machine of that size (root, cgroups): 0.5 for every node, or standby1=0.5,standby2=0.5 (when an env is built)"}
}

// memoryFlag caps nodes' memory when a docker env is built.
func memoryFlag() cli.Flag {
	return &cli.StringFlag{Name: "memory", Usage: "cap each node's memory, --provider docker (a container limit): 1GB for every node, or standby1=512MB,standby2=512MB (when an env is built)"}
}

// imageFlag is the docker provider's image.
func imageFlag() cli.Flag {
	return &cli.StringFlag{Name: "image", Value: env.DefaultImage, Usage: "--provider docker: the PostgreSQL image the nodes run (make docker-image builds the default from Debian's packages)"}
}

// applyDelayFlag delays a standby's replay when an env is built.
func applyDelayFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "apply-delay", Usage: "recovery_min_apply_delay for a standby, e.g. standby2=500ms (repeatable, or comma-separated; when an env is built)"}
}

// netFlags put standbys behind slow links when an env is built.
func netFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "net-delay", Usage: "a slow link in front of a standby: round-trip delay added to its clients' and its replication connections, e.g. standby2=50ms or standby2=50ms±10ms (repeatable; when an env is built)"},
		&cli.StringSliceFlag{Name: "net-bandwidth", Usage: "cap each connection of a standby's links each way, e.g. standby2=10mbit (kbit, mbit, gbit; repeatable; when an env is built)"},
	}
}

// parseNetLinks reads --net-delay and --net-bandwidth.
func parseNetLinks(cmd *cli.Command) (map[string]env.Link, error) {
	links := map[string]env.Link{}
	if err := env.ParseNetDelays(cmd.StringSlice("net-delay"), links); err != nil {
		return nil, err
	}
	if err := env.ParseNetBandwidths(cmd.StringSlice("net-bandwidth"), links); err != nil {
		return nil, err
	}
	return links, nil
}

// formatFlag chooses the files a command writes; def is its default.
func formatFlag(def string) cli.Flag {
	return &cli.StringFlag{Name: "format", Value: def, Usage: "files to write: md, csv, json (any comma-separated subset) or all"}
}

// parseSeconds reads a duration as Go writes it (30s, 2m) or, as pgbench's
// -T and -P take it, plain seconds (30, 0.5).
func parseSeconds(flag, s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 0 {
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, input.Bad(flag, s, "want a duration like 30s or 2m, or plain seconds (30)")
	}
	return d, nil
}

// progressFlags say how a run reports its progress (on stderr).
func progressFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "progress", Aliases: []string{"P"}, Value: "1s", Usage: "a progress line on stderr every this long while reads run (qps, p50, p99, errors, lag), as pgbench's -P: 5s or 5"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress on stderr: only the results"},
	}
}

// progressFor is the progress printer --progress and --quiet ask for.
func progressFor(cmd *cli.Command) (*progress, error) {
	every, err := parseSeconds("progress", cmd.String("progress"))
	if err != nil {
		return nil, err
	}
	if every < time.Second {
		return nil, input.Bad("progress", cmd.String("progress"), "want 1s or more: progress is counted in whole measured seconds")
	}
	return newProgress(cmd.Root().ErrWriter, every, cmd.Bool("quiet")), nil
}
