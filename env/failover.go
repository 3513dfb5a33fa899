package env

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
)

// FailoverReport is what a failover did and how long each step took.
type FailoverReport struct {
	At                     time.Time // when the old primary was killed
	OldPrimary, NewPrimary string
	// Killed is how long the old primary took to go down (SIGKILL).
	Killed time.Duration
	// Promoted is how long the new primary took to leave recovery.
	Promoted time.Duration
	// Followers says, per remaining standby, how it came to follow the
	// new primary ("repointed") and how long after the failover began it
	// streamed again; a standby that could not follow is named in Failed.
	Followers map[string]Follower
	Failed    map[string]string
	// Total is from the kill until every follower streamed again.
	Total time.Duration
	// Sync is the new primary's synchronous_standby_names ("off" when
	// asynchronous) when the env had a rule; "" when it had none.
	Sync string
}

// Follower is one remaining standby after a failover.
type Follower struct {
	How       string        // repointed
	Streaming time.Duration // since the failover began
}

// Failover does what losing the primary and promoting a standby does:
// the primary goes down hard (SIGKILL), to is promoted, and every other
// standby is re-pointed to follow to's new timeline, with a slot on to,
// until it streams again. promoted, when not nil, is called as soon as to
// accepts writes, before the others follow: a benchmark moves its writers
// then. The cluster (and its state file) says the new topology when
// Failover returns; a standby that could not follow is reported, not a
// reason to stop (the others still follow).
func Failover(ctx context.Context, ctl Controller, c *Cluster, to string, promoted func()) (*FailoverReport, error) {
	if c.Patroni != nil {
		return patroniFailover(ctx, c, to, promoted)
	}
	n, err := c.Node(to)
	if err != nil {
		return nil, err
	}
	if n.Role != RoleStandby {
		return nil, input.Bad("to", to, "want a standby of env %q to promote; %s is the %s", c.Name, to, n.Role)
	}
	// Checked before the primary dies: a frozen or stopped target could
	// not be promoted, and the env would be left with no primary.
	if st, err := ctl.State(ctx, to); err != nil {
		return nil, fmt.Errorf("failover: %s: %w", to, err)
	} else if st != NodeRunning {
		return nil, input.Bad("to", to, "want a running standby to promote; %s is %s: start or thaw it first (the primary was left alone)", to, st)
	}
	r := &FailoverReport{OldPrimary: c.Primary.Name, NewPrimary: to, Followers: map[string]Follower{}, Failed: map[string]string{}}
	var others []string
	for _, s := range c.Standbys {
		if s.Name != to {
			others = append(others, s.Name)
		}
	}
	start := time.Now()
	r.At = start
	if err := ctl.Kill(ctx, r.OldPrimary); err != nil {
		return r, fmt.Errorf("failover: kill %s: %w", r.OldPrimary, err)
	}
	r.Killed = time.Since(start)
	t := time.Now()
	if err := ctl.Promote(ctx, to); err != nil {
		return r, fmt.Errorf("failover: promote %s: %w", to, err)
	}
	r.Promoted = time.Since(t)
	if promoted != nil {
		promoted()
	}
	slices.Sort(others)
	for _, s := range others {
		// A standby that streamed from the promoted node (a cascade)
		// follows it onto the new timeline by itself.
		if sn, err := c.Node(s); err == nil && sn.Upstream == to {
			r.Followers[s] = Follower{How: "followed (cascade)", Streaming: time.Since(start)}
			continue
		}
		how, err := follow(ctx, ctl, s, to)
		if err != nil {
			r.Failed[s] = err.Error()
			continue
		}
		r.Followers[s] = Follower{How: how, Streaming: time.Since(start)}
	}
	r.Total = time.Since(start)
	if err := restartProxies(ctx, c); err != nil {
		r.Failed["proxies"] = err.Error()
	}
	if c.Sync != "" {
		// The promoted node was maybe one the old primary waited for:
		// the new one waits for the standbys that follow it instead.
		rule, err := ParseSync(c.Sync)
		if err != nil {
			return r, fmt.Errorf("failover: the env's synchronous_standby_names %q: %w", c.Sync, err)
		}
		var following []string
		for _, s := range others {
			if _, ok := r.Followers[s]; ok {
				following = append(following, s)
			}
		}
		// Only standbys that follow can acknowledge: a name kept for one
		// that is down or failed to follow would make commits wait.
		next := rule.AfterFailover(to, following).Only(following)
		if err := ctl.SetSync(ctx, next); err != nil {
			r.Sync = "unknown"
			if errors.Is(err, ErrSyncReset) {
				r.Sync = "off"
			}
			return r, fmt.Errorf("failover: %w", err)
		}
		r.Sync = orOff(next.String())
	}
	if len(r.Failed) > 0 {
		return r, fmt.Errorf("failover: %d standby(s) could not follow %s: %v", len(r.Failed), to, r.Failed)
	}
	return r, nil
}

// Record is the failover as run.json keeps it.
func (r *FailoverReport) Record() metrics.Failover {
	f := metrics.Failover{At: r.At.UTC(), OldPrimary: r.OldPrimary, NewPrimary: r.NewPrimary,
		PromoteMS: ms(r.Promoted), AllStreamingMS: ms(r.Total), SynchronousStandbyNames: r.Sync}
	for _, n := range slices.Sorted(maps.Keys(r.Followers)) {
		fo := r.Followers[n]
		f.Followers = append(f.Followers, metrics.Follower{Node: n, How: fo.How, StreamingMS: ms(fo.Streaming)})
	}
	for _, n := range slices.Sorted(maps.Keys(r.Failed)) {
		f.Followers = append(f.Followers, metrics.Follower{Node: n, How: "failed", StreamingMS: -1, Error: r.Failed[n]})
		f.AllStreamingMS = -1
	}
	return f
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// follow makes a remaining standby stream from the new primary: re-pointed
// when it can follow the new timeline; rewound with pg_rewind when it had
// replayed past the fork (asynchronous replication: it was ahead of the
// promoted node); rebuilt with pg_basebackup when the rewind fails. It
// says which it took.
func follow(ctx context.Context, ctl Controller, standby, to string) (string, error) {
	err := ctl.Repoint(ctx, standby, to)
	if err == nil {
		return "repointed", nil
	}
	if !errors.Is(err, ErrForked) {
		return "", err
	}
	rerr := ctl.Rewind(ctx, standby, to)
	if rerr == nil {
		return "rewound (pg_rewind: it had replayed past the fork)", nil
	}
	if berr := ctl.Rebuild(ctx, standby, to); berr != nil {
		return "", fmt.Errorf("%w; pg_rewind: %v; rebuild: %v", err, rerr, berr)
	}
	return fmt.Sprintf("rebuilt (pg_basebackup: it had replayed past the fork, and pg_rewind failed: %v)", rerr), nil
}

// String is one line for an event or the terminal.
func (r *FailoverReport) String() string {
	s := fmt.Sprintf("%s promoted in %s (old primary %s killed)", r.NewPrimary, r.Promoted.Round(time.Millisecond), r.OldPrimary)
	names := make([]string, 0, len(r.Followers))
	for n := range r.Followers {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		f := r.Followers[n]
		s += fmt.Sprintf("; %s %s, streaming after %s", n, f.How, f.Streaming.Round(time.Millisecond))
	}
	for n, why := range r.Failed {
		s += fmt.Sprintf("; %s could not follow: %s", n, why)
	}
	if r.Sync != "" {
		s += "; synchronous_standby_names on " + r.NewPrimary + ": " + r.Sync
	}
	return s
}

// Restart stops a node that runs or is frozen (cleanly), then starts it
// and waits as Start does; a stopped or killed node is only started.
func Restart(ctx context.Context, ctl Controller, node string) error {
	st, err := ctl.State(ctx, node)
	if err != nil {
		return err
	}
	if st != NodeStopped {
		if err := ctl.Stop(ctx, node); err != nil {
			return err
		}
	}
	return ctl.Start(ctx, node)
}
