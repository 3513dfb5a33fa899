package env

import (
	"context"
	"fmt"
	"time"

	"github.com/pgbenchx/pgbenchx/input"
)

// patroniFollowWait bounds how long a failover waits for the remaining
// replicas to stream from Patroni's new leader (measured here: ~2.2 s
// after the promotion; Patroni re-points them once it sees the timeline).
const patroniFollowWait = 60 * time.Second

// patroniFailover is a failover on a Patroni env, as Patroni does it:
// the leader (its Patroni and its postgres) is killed and Patroni elects
// another once the leader key's ttl runs out. Which replica it elects is
// Patroni's choice, not the fault's. promoted is called once the new
// leader takes writes; the report's Promoted is Patroni's own failover
// time, from the kill to the promotion its timeline history records.
func patroniFailover(ctx context.Context, c *Cluster, to string, promoted func()) (*FailoverReport, error) {
	if n, err := c.Node(to); err != nil {
		return nil, err
	} else if n.Role != RoleStandby {
		return nil, input.Bad("to", to, "want a standby of env %q; %s is the %s", c.Name, to, n.Role)
	}
	r := &FailoverReport{OldPrimary: c.Primary.Name, Followers: map[string]Follower{}, Failed: map[string]string{}}
	start := time.Now()
	r.At = start
	old, err := killLeader(ctx, c)
	if err != nil {
		return r, fmt.Errorf("failover: %w", err)
	}
	r.OldPrimary, r.Killed = old, time.Since(start)
	// The leader is dead: whatever ends the caller's context now (the run
	// ending, Ctrl-C), the election is waited for and recorded, or the
	// state would name a dead primary. Patroni elects within its ttl
	// (10 s) and a loop: two minutes means it will not.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	leader, took, err := waitLeader(ctx, c, old)
	if err != nil {
		return r, fmt.Errorf("failover: patroni elected no new leader: %w", err)
	}
	r.NewPrimary, r.Promoted = leader, took
	stateMu.Lock()
	err = patroniRecordFailover(c, leader)
	if err == nil && c.stateDir != "" {
		err = Store{Dir: c.stateDir}.Save(c)
	}
	stateMu.Unlock()
	if err != nil {
		return r, fmt.Errorf("failover: recording %s as the primary: %w", leader, err)
	}
	if promoted != nil {
		promoted()
	}
	wctx, cancel := context.WithTimeout(ctx, patroniFollowWait)
	defer cancel()
	for _, s := range c.Standbys {
		if err := waitStreamingFrom(wctx, &c.Primary, s.Name); err != nil {
			r.Failed[s.Name] = err.Error()
			continue
		}
		r.Followers[s.Name] = Follower{How: "re-pointed by patroni", Streaming: time.Since(start)}
	}
	r.Total = time.Since(start)
	return r, nil
}

// PatroniLeader is the member Patroni says leads a Patroni env now: it
// may have changed it on its own since the state was saved.
func PatroniLeader(ctx context.Context, c *Cluster) (string, error) {
	if c.Patroni == nil {
		return "", fmt.Errorf("env %q is not run by patroni", c.Name)
	}
	return patroniLeader(ctx, c)
}
