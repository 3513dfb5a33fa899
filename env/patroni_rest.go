package env

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// patroniURL is member i's REST API with this path.
func patroniURL(c *Cluster, i int, path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(c.Patroni.RESTPorts[i]) + path
}

// patroniClusterView is what GET /cluster answers (Patroni's
// cluster_as_json): the DCS's view, the same whichever member is asked.
type patroniClusterView struct {
	Members []struct {
		Name     string          `json:"name"`
		Role     string          `json:"role"` // leader | replica | sync_standby | standby_leader
		State    string          `json:"state"`
		Port     int             `json:"port"`
		Timeline int             `json:"timeline"`
		Lag      json.RawMessage `json:"lag"` // bytes, or "unknown"
	} `json:"members"`
}

// patroniLeader asks the members' REST APIs, in turn, who holds the
// leader key now (GET /cluster). A member that does not answer (killed,
// say) is skipped; the first answer is the DCS's word.
func patroniLeader(ctx context.Context, c *Cluster) (string, error) {
	if c.Patroni == nil || len(c.Patroni.Members) == 0 {
		return "", fmt.Errorf("env %q has no Patroni running", c.Name)
	}
	var errs []error
	// Members, not RESTPorts: an up that failed halfway picked every
	// member's port but started only some (members start in node order,
	// so Members[i] listens on RESTPorts[i]).
	for i := range c.Patroni.Members {
		var v patroniClusterView
		if err := getJSON(ctx, patroniURL(c, i, "/cluster"), &v); err != nil {
			errs = append(errs, fmt.Errorf("%s's Patroni: %w", c.Patroni.Members[i].Name, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		for _, m := range v.Members {
			if m.Role == "leader" || m.Role == "standby_leader" {
				return m.Name, nil
			}
		}
		return "", fmt.Errorf("env %q: no leader (asked %s's Patroni)", c.Name, c.Patroni.Members[i].Name)
	}
	return "", fmt.Errorf("env %q: no Patroni answers: %w", c.Name, errors.Join(errs...))
}

// patroniKills remembers when killLeader killed a leader (by scope and
// member), so that waitLeader measures the election from the kill.
var patroniKills = struct {
	sync.Mutex
	at map[string]time.Time
}{at: map[string]time.Time{}}

// killLeader SIGKILLs the leader's Patroni and then its postgres (every
// process of it): a failover fault on a Patroni env. Patroni first: alive,
// it would start its postgres again and keep refreshing its leader key.
// The leader key then lives on until its ttl runs out, and the replicas
// elect a new leader (waitLeader). It returns the old leader's name.
func killLeader(ctx context.Context, c *Cluster) (string, error) {
	leader, err := patroniLeader(ctx, c)
	if err != nil {
		return "", err
	}
	var member *StackProcess
	for i := range c.Patroni.Members {
		if c.Patroni.Members[i].Name == leader {
			member = &c.Patroni.Members[i]
		}
	}
	n, err := c.Node(leader)
	if member == nil || err != nil {
		return "", fmt.Errorf("env %q: Patroni's leader %q is none of the env's members", c.Name, leader)
	}
	pm, pmRuns := postmasterOf(n)
	at := time.Now()
	if stackAlive(*member) {
		if err := syscall.Kill(member.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return "", fmt.Errorf("%s's Patroni: kill pid %d: %w", leader, member.PID, err)
		}
	}
	var errs []error
	if pmRuns {
		if err := killTree(n.DataDir, pm); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", leader, err))
		}
	}
	if !waitFor(10*time.Second, func() bool { return !stackAlive(*member) }) {
		errs = append(errs, fmt.Errorf("%s's Patroni: pid %d alive 10s after SIGKILL", leader, member.PID))
	}
	n.PID = 0
	patroniKills.Lock()
	patroniKills.at[c.Patroni.Scope+"/"+leader] = at
	patroniKills.Unlock()
	return leader, errors.Join(errs...)
}

// waitLeader polls until a member other than old leads and its postgres
// accepts writes; it returns that member's name and how long the election
// took: from old's kill (killLeader in this process; else from this
// call) to the new leader's promotion as Patroni's history records it
// (patroniPromotedAt), else to the moment polling found it writable.
// Measured here (ttl 10, loop_wait 1): ~10.5 s, all but ~0.15 s of it the
// old leader key's ttl running out; polling finds the new leader writable
// ~0.1-0.3 s after its promotion.
func waitLeader(ctx context.Context, c *Cluster, old string) (string, time.Duration, error) {
	if c.Patroni == nil {
		return "", 0, fmt.Errorf("env %q is not run by Patroni", c.Name)
	}
	start := time.Now()
	patroniKills.Lock()
	if at, ok := patroniKills.at[c.Patroni.Scope+"/"+old]; ok {
		start = at
	}
	patroniKills.Unlock()
	var leader string
	lastErr := errors.New("no answer yet")
	for {
		l, err := patroniLeader(ctx, c)
		switch {
		case err != nil:
			lastErr = err
		case l == old:
			lastErr = fmt.Errorf("%s still holds the leader key", old)
		default:
			if err = acceptsWrites(ctx, c, l); err == nil {
				leader = l
			} else {
				lastErr = err
			}
		}
		if leader != "" {
			break
		}
		select {
		case <-ctx.Done():
			return "", time.Since(start), fmt.Errorf("env %q: no new leader after %s: %w (last: %v)", c.Name, time.Since(start).Round(time.Millisecond), ctx.Err(), lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	polled := time.Since(start)
	if at, ok := patroniPromotedAt(ctx, c, leader, start); ok {
		return leader, at.Sub(start), nil
	}
	return leader, polled, nil
}

// acceptsWrites says whether the member's postgres takes a write: a
// transaction id is given only outside recovery.
func acceptsWrites(ctx context.Context, c *Cluster, name string) error {
	n, err := c.Node(name)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, n.DSN())
	if err != nil {
		return fmt.Errorf("%s: connect: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(cctx, `SELECT pg_current_xact_id()`); err != nil {
		return fmt.Errorf("%s: write: %w", name, err)
	}
	return nil
}

// patroniPromotedAt is when leader was promoted as Patroni's history has
// it: its lines are [timeline, lsn, reason, time, member], the time being
// the mtime of the new timeline's history file (pg_wal/0000000N.history,
// written as the promotion ends). The leader puts that line in the DCS
// (GET /history) only in an HA loop after the promotion is done: measured
// here, ~2 s after the file. So when the line is not there yet, the file's
// mtime is read where Patroni reads it, rather than waiting. ok is false
// when neither shows a promotion after since.
func patroniPromotedAt(ctx context.Context, c *Cluster, leader string, since time.Time) (time.Time, bool) {
	for i, m := range c.Patroni.Members {
		if m.Name != leader {
			continue
		}
		var lines [][]any
		if getJSON(ctx, patroniURL(c, i, "/history"), &lines) != nil {
			break
		}
		for _, l := range slices.Backward(lines) {
			if len(l) < 5 || fmt.Sprint(l[4]) != leader {
				continue
			}
			// A line from before the kill is an earlier promotion.
			if ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(l[3])); err == nil && ts.After(since) {
				return ts, true
			}
		}
	}
	n, err := c.Node(leader)
	if err != nil {
		return time.Time{}, false
	}
	files, _ := filepath.Glob(filepath.Join(n.DataDir, "pg_wal", "*.history"))
	if len(files) == 0 {
		return time.Time{}, false
	}
	slices.Sort(files) // the newest timeline's last: names are its number, in hex, zero-padded
	st, err := os.Stat(files[len(files)-1])
	if err != nil || !st.ModTime().After(since) {
		return time.Time{}, false
	}
	return st.ModTime(), true
}

// patroniRecordFailover records in c what Patroni did after killLeader:
// leader is the primary, the old one detached (its Patroni and postgres
// were killed; nothing restarts them), the other standbys stream from
// leader through their slots on it. The caller holds stateMu and saves
// the state.
func patroniRecordFailover(c *Cluster, leader string) error {
	if c.Primary.Name == leader {
		return nil
	}
	if err := recordPromotion(c, leader); err != nil {
		return err
	}
	for i := range c.Standbys {
		c.Standbys[i].Upstream, c.Standbys[i].Slot = leader, patroniSlot(c.Standbys[i].Name)
	}
	return nil
}
