package env

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Controller changes the state of one node of a running cluster: what
// fault and failover scenarios drive. Get one from the cluster's provider
// (ProviderOf(c) then Control(c)). Node names are "primary", "standby1",
// ...; an unknown name is bad input (*input.Error for --node).
//
// Operations change the *Cluster the Controller was made for (PIDs,
// roles, upstreams) and save its state file, so `env status`, `env down`
// and later processes see the cluster as it now is. Do not read that
// Cluster from other goroutines while an operation runs; one process at a
// time should control an env (the state file is rewritten whole).
type Controller interface {
	// Stop shuts the node down cleanly (pg_ctl -m fast: SIGINT, then
	// immediate and SIGKILL if it takes over 15 s) and returns once its
	// postmaster is gone. A frozen node is thawed first. A primary's
	// walsenders send its standbys all WAL up to the shutdown checkpoint.
	Stop(ctx context.Context, node string) error
	// Kill is a crash: SIGKILL to the postmaster and every process it
	// started, as a host crash would; returns once all are gone, having
	// removed the shared memory segments a killed server leaves in
	// /dev/shm. Start then runs crash recovery.
	Kill(ctx context.Context, node string) error
	// Freeze is a hung host: SIGSTOP to the postmaster and every process
	// under it (found when it freezes); returns once the kernel shows them
	// all stopped. TCP connections stay open and nothing answers.
	Freeze(ctx context.Context, node string) error
	// Thaw resumes what Freeze stopped, and whatever is stopped under the
	// node's postmaster now (so a Thaw from another process works).
	Thaw(ctx context.Context, node string) error
	// Start starts a stopped or killed node again, with the same data
	// folder and port, and waits until it accepts connections; a standby
	// whose upstream runs, until that upstream shows it streaming. (A
	// primary's standbys reconnect by themselves within
	// wal_retrieve_retry_interval, 5 s.) Backends left by a postmaster
	// killed from outside are ended first. A node already running is only
	// waited for. A detached node is refused: it would come back as a
	// second primary.
	Start(ctx context.Context, node string) error
	// Promote ends a standby's recovery (pg_promote) and waits until it is
	// out of recovery. It becomes c.Primary; the old primary moves to
	// c.Detached (Promote does not fence it: stop or kill it first, or two
	// primaries accept writes). Standbys fed by the promoted node follow
	// it onto the new timeline; the others need Repoint.
	Promote(ctx context.Context, node string) error
	// Repoint makes a standby stream from another node in service (a new
	// primary after a failover, or a standby for a cascade): a slot for it
	// on the new upstream, primary_conninfo with its application_name, a
	// restart, and a wait until the upstream's pg_stat_replication shows it
	// streaming. Its slot on the old upstream is dropped when that node
	// runs. A standby that replayed past the new upstream's timeline fork
	// cannot follow it: Repoint then fails, naming the fork, with an error
	// that wraps ErrForked.
	Repoint(ctx context.Context, standby, upstream string) error
	// Rewind makes a standby that cannot follow upstream (Repoint failed
	// with ErrForked) follow it: pg_rewind from upstream, its own settings
	// kept, a slot on upstream, a start, a wait until it streams.
	Rewind(ctx context.Context, standby, upstream string) error
	// Rebuild replaces a standby's data folder with a pg_basebackup of
	// upstream, keeping its own settings, and waits until it streams:
	// what is left when a rewind is not possible.
	Rebuild(ctx context.Context, standby, upstream string) error
	// SetSync gives the primary a synchronous_standby_names rule (the
	// zero rule: asynchronous) and waits until enough standbys are
	// synchronous for a commit to be acknowledged.
	SetSync(ctx context.Context, rule SyncRule) error
	// State says whether the node's server runs, is frozen or is stopped.
	State(ctx context.Context, node string) (NodeState, error)
}

// NodeState is what a node's server is doing, as its provider sees it.
type NodeState string

const (
	NodeRunning NodeState = "running"
	NodeFrozen  NodeState = "frozen"  // stopped by a signal (Freeze)
	NodeStopped NodeState = "stopped" // no server: stopped, killed or crashed
)

// FindPrimaryWait bounds each node's answer in FindPrimary: a frozen node
// never answers.
const FindPrimaryWait = 2 * time.Second

// FindPrimary asks every node, detached ones included, pg_is_in_recovery()
// over its DSN, each within FindPrimaryWait, and returns the name of the
// one node that is not in recovery. None answering so, or several (a
// split brain), is an error naming what each node said.
func FindPrimary(ctx context.Context, c *Cluster) (string, error) {
	nodes := c.AllNodes()
	said := make([]string, len(nodes))
	primary := make([]bool, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		dsn, name := n.DSN(), n.Name
		wg.Add(1)
		go func() {
			defer wg.Done()
			inRec, err := inRecovery(ctx, dsn)
			switch {
			case err != nil:
				said[i] = fmt.Sprintf("%s: %v", name, err)
			case inRec:
				said[i] = name + " in recovery"
			default:
				said[i], primary[i] = name+" not in recovery", true
			}
		}()
	}
	wg.Wait()
	var found []string
	for i, n := range nodes {
		if primary[i] {
			found = append(found, n.Name)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("env %q: no node answers as a primary (%s)", c.Name, strings.Join(said, "; "))
	}
	sort.Strings(found)
	return "", fmt.Errorf("env %q: %d nodes answer as a primary, a split brain: %s", c.Name, len(found), strings.Join(found, ", "))
}

func inRecovery(ctx context.Context, dsn string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, FindPrimaryWait)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		if ctx.Err() != nil {
			return false, fmt.Errorf("no answer within %s", FindPrimaryWait)
		}
		return false, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	var inRec bool
	if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRec); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return false, fmt.Errorf("no answer within %s", FindPrimaryWait)
		}
		return false, err
	}
	return inRec, nil
}
