package env

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbenchx/pgbenchx/input"
)

// controlWait bounds each wait of a node operation: a standby to stream, a
// promotion to finish. Starting a server has startServer's own limit.
const controlWait = time.Minute

// stateMu guards every change a Controller makes to a Cluster, and the
// state file write that follows it.
var stateMu sync.Mutex

// localControl drives the nodes of a local cluster with signals and the
// server binaries, as the servers' OS user when we are root.
type localControl struct {
	c     *Cluster
	store Store
	u     osUser
}

var _ Controller = (*localControl)(nil)

// Control returns the Controller of a local cluster. It saves c to the
// state folder c was loaded from or saved to (else the provider's Store).
func (l *Local) Control(c *Cluster) (Controller, error) {
	if c == nil {
		return nil, errors.New("env: Control(nil)")
	}
	if c.Provider != "" && c.Provider != l.Name() {
		return nil, fmt.Errorf("env %q was built by provider %q, not %s", c.Name, c.Provider, l.Name())
	}
	if c.Status != statusReady {
		return nil, fmt.Errorf("env %q is %s, not ready: nothing to control yet", c.Name, c.Status)
	}
	store := Store{Dir: c.stateDir}
	if store.Dir == "" {
		l.defaults()
		store = l.Store
	}
	return &localControl{c: c, store: store, u: clusterUser(c)}, nil
}

// clusterUser is who runs the cluster's servers: its recorded OS user,
// switched to only when we are root and that user is not.
func clusterUser(c *Cluster) osUser {
	return osUser{Name: c.OSUser, UID: c.UID, GID: c.GID, switchTo: os.Geteuid() == 0 && c.UID != 0}
}

// node returns a copy of the named node, read under stateMu.
func (lc *localControl) node(name string) (Node, error) {
	stateMu.Lock()
	defer stateMu.Unlock()
	n, err := lc.c.Node(name)
	if err != nil {
		return Node{}, err
	}
	return *n, nil
}

// update changes the named node and saves the state file.
func (lc *localControl) update(name string, fn func(n *Node)) error {
	stateMu.Lock()
	defer stateMu.Unlock()
	n, err := lc.c.Node(name)
	if err != nil {
		return err
	}
	fn(n)
	return lc.save()
}

// save writes the state file; the caller holds stateMu.
func (lc *localControl) save() error {
	if err := lc.store.Save(lc.c); err != nil {
		return fmt.Errorf("env %q: save state: %w", lc.c.Name, err)
	}
	return nil
}

// postmasterOf finds the node's running postmaster: the recorded pid, else
// the one in postmaster.pid (started by another process).
func postmasterOf(n *Node) (proc, bool) {
	for _, pid := range []int{n.PID, postmasterPID(n.DataDir)} {
		if postmasterAlive(pid, n.DataDir) {
			if p, ok := procOf(pid); ok {
				return p, true
			}
		}
	}
	return proc{}, false
}

// running returns the node's postmaster, or an error if it is stopped or
// frozen: what an operation that talks to the server needs.
func running(n *Node) (proc, error) {
	pm, ok := postmasterOf(n)
	if !ok {
		return proc{}, fmt.Errorf("%s is not running (start it first)", n.Name)
	}
	if pm.stopped() {
		return proc{}, fmt.Errorf("%s is frozen (thaw it first)", n.Name)
	}
	return pm, nil
}

func (lc *localControl) State(_ context.Context, name string) (NodeState, error) {
	n, err := lc.node(name)
	if err != nil {
		return "", err
	}
	pm, ok := postmasterOf(&n)
	switch {
	case !ok:
		return NodeStopped, nil
	case pm.stopped():
		return NodeFrozen, nil
	}
	return NodeRunning, nil
}

func (lc *localControl) Stop(_ context.Context, name string) error {
	n, err := lc.node(name)
	if err != nil {
		return err
	}
	// A stopped postmaster would take SIGINT only once thawed, and
	// stopped backends would hold its shared memory past its end.
	pm, _ := postmasterOf(&n)
	if err := thawTree(n.DataDir, pm); err != nil {
		return fmt.Errorf("%s: thaw before stopping: %w", name, err)
	}
	if err := stopNode(&n); err != nil {
		return err
	}
	return lc.update(name, func(m *Node) { m.PID = 0 })
}

func (lc *localControl) Kill(_ context.Context, name string) error {
	n, err := lc.node(name)
	if err != nil {
		return err
	}
	pm, ok := postmasterOf(&n)
	if ok {
		if err := killTree(n.DataDir, pm); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	} else if err := errors.Join(thawTree(n.DataDir, proc{}), clearStrays(n.DataDir, 0)); err != nil {
		return fmt.Errorf("%s: %w", name, err) // already down: end what it left
	}
	return lc.update(name, func(m *Node) { m.PID = 0 })
}

func (lc *localControl) Freeze(_ context.Context, name string) error {
	n, err := lc.node(name)
	if err != nil {
		return err
	}
	pm, ok := postmasterOf(&n)
	if !ok {
		return fmt.Errorf("%s is not running: nothing to freeze", name)
	}
	if err := freezeTree(n.DataDir, pm); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (lc *localControl) Thaw(_ context.Context, name string) error {
	n, err := lc.node(name)
	if err != nil {
		return err
	}
	pm, _ := postmasterOf(&n)
	if err := thawTree(n.DataDir, pm); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (lc *localControl) Start(ctx context.Context, name string) error {
	n, err := lc.node(name)
	if err != nil {
		return err
	}
	if n.Role == RoleDetached {
		return input.Bad("node", name, "%s left replication in a failover (the primary is %s): started, it would be a second primary",
			name, lc.primaryName())
	}
	logStart := fileSize(n.LogFile)
	if pm, ok := postmasterOf(&n); ok {
		if pm.stopped() {
			return fmt.Errorf("%s is frozen (thaw it first)", name)
		}
		if pm.pid != n.PID {
			if err := lc.update(name, func(m *Node) { m.PID = pm.pid }); err != nil {
				return err
			}
		}
	} else {
		// Backends of a postmaster killed by someone else hold its shared
		// memory: the new server would refuse to start until they are gone.
		if err := clearStrays(n.DataDir, 5*time.Second); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := lc.startNode(ctx, &n); err != nil {
			return err
		}
	}
	if n.Role == RoleStandby {
		return lc.waitStreaming(ctx, n, logStart)
	}
	return nil
}

// startNode starts a node's server on its own port (standbys' conninfo
// names it: it must not move) and records the new pid.
func (lc *localControl) startNode(ctx context.Context, n *Node) error {
	if err := startOnce(ctx, lc.c, lc.u, n); err != nil {
		if errors.Is(err, errPortTaken) {
			return fmt.Errorf("%s: its port %d is taken by another process: %w", n.Name, n.Port, err)
		}
		return err
	}
	pid := n.PID
	return lc.update(n.Name, func(m *Node) { m.PID = pid })
}

func (lc *localControl) primaryName() string {
	stateMu.Lock()
	defer stateMu.Unlock()
	return lc.c.Primary.Name
}

// waitStreaming waits until the standby's upstream shows it streaming.
// An upstream that is stopped or frozen has nothing to stream: the
// standby being ready is then all there is to wait for. A standby that
// cannot follow its upstream's timeline fails at once, naming the fork.
func (lc *localControl) waitStreaming(ctx context.Context, n Node, logStart int64) error {
	up, err := lc.node(n.Upstream)
	if err != nil {
		return err
	}
	if _, err := running(&up); err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, controlWait)
	defer cancel()
	conn, err := pgx.Connect(ctx, socketDSN(lc.c, &up))
	if err != nil {
		return fmt.Errorf("%s: connect to its upstream %s: %w", n.Name, up.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	last := "absent"
	for i := 0; ; i++ {
		var state string
		err := conn.QueryRow(ctx, `SELECT state FROM pg_stat_replication WHERE application_name = $1`, n.Name).Scan(&state)
		switch {
		case err == nil && state == "streaming":
			// A standby ahead of its upstream's timeline fork streams the
			// old timeline up to the fork first (it restarts at its
			// segment's start): only the upstream's own timeline counts.
			on, err := sameTimeline(ctx, lc.c, &n, conn)
			if err != nil {
				return fmt.Errorf("%s: timeline: %w", n.Name, err)
			}
			if on {
				return nil
			}
			last = "streaming an older timeline"
		case err == nil:
			last = state
		case errors.Is(err, pgx.ErrNoRows):
		case ctx.Err() != nil:
			return fmt.Errorf("%s: not streaming from %s after %s (pg_stat_replication state: %s): %s",
				n.Name, up.Name, controlWait, last, lastLines(logSince(n.LogFile, logStart), 3))
		default:
			return fmt.Errorf("%s: poll pg_stat_replication on %s: %w", n.Name, up.Name, err)
		}
		if i%20 == 0 {
			if line := forkLine(logFrom(n.LogFile, logStart)); line != "" {
				return fmt.Errorf("%s cannot stream from %s: %s: %w", n.Name, up.Name, line, ErrForked)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not streaming from %s after %s (pg_stat_replication state: %s): %s",
				n.Name, up.Name, controlWait, last, lastLines(logSince(n.LogFile, logStart), 3))
		case <-time.After(pollEvery):
		}
	}
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// logFrom reads a log from an offset, at most 1 MiB.
func logFrom(path string, off int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	return string(b)
}

func (lc *localControl) Promote(ctx context.Context, name string) error {
	n, err := lc.node(name)
	if err != nil {
		return err
	}
	if n.Role != RoleStandby {
		return input.Bad("node", name, "%s is not a standby (it is %s); promote one of %s", name, n.Role, lc.standbyNames())
	}
	if _, err := running(&n); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, controlWait+5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, socketDSN(lc.c, &n))
	if err != nil {
		return fmt.Errorf("%s: connect: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var promoted bool
	if err := conn.QueryRow(ctx, `SELECT pg_promote(true, $1)`, int(controlWait.Seconds())).Scan(&promoted); err != nil {
		return fmt.Errorf("%s: pg_promote: %w", name, err)
	}
	if !promoted {
		return fmt.Errorf("%s: not promoted within %s: %s", name, controlWait, lastLines(logSince(n.LogFile, 0), 3))
	}
	var inRec bool
	if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRec); err != nil || inRec {
		return fmt.Errorf("%s: still in recovery after pg_promote (%v)", name, err)
	}
	stateMu.Lock()
	defer stateMu.Unlock()
	if err := recordPromotion(lc.c, name); err != nil {
		return err
	}
	return lc.save()
}

// recordPromotion makes standby name c's primary and detaches the old
// one; the caller holds stateMu and saves the state.
func recordPromotion(c *Cluster, name string) error {
	for i := range c.Standbys {
		if c.Standbys[i].Name != name {
			continue
		}
		p := c.Standbys[i]
		p.Role, p.Upstream, p.Slot, p.ApplyDelay = RolePrimary, "", "", 0
		old := c.Primary
		old.Role = RoleDetached
		c.Standbys = append(c.Standbys[:i:i], c.Standbys[i+1:]...)
		c.Primary = p
		c.Detached = append(c.Detached, old)
		return nil
	}
	return fmt.Errorf("%s: no longer a standby of env %q (promoted meanwhile?)", name, c.Name)
}

func (lc *localControl) standbyNames() string {
	stateMu.Lock()
	defer stateMu.Unlock()
	var names []string
	for _, s := range lc.c.Standbys {
		names = append(names, s.Name)
	}
	if len(names) == 0 {
		return "(none: this env has no standbys)"
	}
	return strings.Join(names, ", ")
}

func (lc *localControl) Repoint(ctx context.Context, standby, upstream string) error {
	sb, err := lc.node(standby)
	if err != nil {
		return err
	}
	if sb.Role != RoleStandby {
		return input.Bad("node", standby, "%s is not a standby (it is %s); repoint one of %s", standby, sb.Role, lc.standbyNames())
	}
	up, err := lc.node(upstream)
	if err != nil {
		return err
	}
	if err := lc.checkUpstream(sb.Name, up); err != nil {
		return err
	}
	if _, err := running(&up); err != nil {
		return fmt.Errorf("cannot repoint %s: %w", standby, err)
	}
	pm, isRunning := postmasterOf(&sb)
	if isRunning && pm.stopped() {
		return fmt.Errorf("%s is frozen (thaw it first)", standby)
	}
	if sb.Slot == "" {
		sb.Slot = SlotName(sb.Name)
	}
	if sb.Upstream == upstream && isRunning {
		return lc.waitStreaming(ctx, sb, fileSize(sb.LogFile))
	}
	if err := lc.ensureSlot(ctx, up, sb.Slot); err != nil {
		return fmt.Errorf("%s: slot %s on %s: %w", standby, sb.Slot, upstream, err)
	}
	if err := stopServer(&sb); err != nil {
		return err
	}
	return lc.startFollowing(ctx, sb, up)
}

// checkUpstream refuses an upstream that is not in service, the standby
// itself, or one fed (maybe through others) by the standby: a loop.
func (lc *localControl) checkUpstream(standby string, up Node) error {
	stateMu.Lock()
	defer stateMu.Unlock()
	c := lc.c
	var names []string
	for _, n := range c.Nodes() {
		if n.Name != standby {
			names = append(names, n.Name)
		}
	}
	accepted := "stream " + standby + " from one of " + strings.Join(names, ", ")
	if up.Role == RoleDetached || up.Name == standby {
		return input.Bad("node", up.Name, "%s", accepted)
	}
	at := up.Name
	for range c.AllNodes() {
		n, err := c.Node(at)
		if err != nil || n.Upstream == "" {
			return nil
		}
		if n.Upstream == standby {
			return input.Bad("node", up.Name, "%s streams from %s: a loop; %s", up.Name, standby, accepted)
		}
		at = n.Upstream
	}
	return nil
}

// ensureSlot creates a physical slot on a node unless it has one of that
// name; it reserves WAL at once, so nothing the standby needs from now on
// is recycled before it connects.
func (lc *localControl) ensureSlot(ctx context.Context, on Node, slot string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, socketDSN(lc.c, &on))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, `SELECT pg_create_physical_replication_slot($1, true)
		WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, slot)
	return err
}

// dropOldSlot drops a repointed standby's slot on its former upstream, a
// courtesy: left there, an inactive slot keeps WAL until the disk fills
// (or max_slot_wal_keep_size). The old walsender may take a moment to go.
func (lc *localControl) dropOldSlot(ctx context.Context, upstream, slot string) {
	old, err := lc.node(upstream)
	if err != nil || upstream == "" {
		return
	}
	if _, err := running(&old); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, socketDSN(lc.c, &old))
	if err != nil {
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for {
		var active *bool
		err := conn.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active)
		if errors.Is(err, pgx.ErrNoRows) || err != nil {
			return
		}
		if !*active {
			_, _ = conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, slot)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pollEvery):
		}
	}
}

// writeUpstream points a stopped standby at another upstream: it replaces
// primary_conninfo and primary_slot_name in postgresql.auto.conf.
func writeUpstream(c *Cluster, n *Node, upPort int) error {
	auto := filepath.Join(n.DataDir, "postgresql.auto.conf")
	b, err := os.ReadFile(auto)
	if err != nil {
		return err
	}
	var keep []string
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		key, _, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "primary_conninfo", "primary_slot_name":
			continue
		}
		keep = append(keep, line)
	}
	keep = append(keep,
		fmt.Sprintf("primary_conninfo = '%s'", standbyConninfo(c, n, upPort)),
		fmt.Sprintf("primary_slot_name = '%s'", n.Slot))
	// In place: the file keeps its owner (the servers' OS user) and mode.
	// Synced: a durable env's standby must find its upstream after a crash.
	f, err := os.OpenFile(auto, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strings.Join(keep, "\n") + "\n")
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}
