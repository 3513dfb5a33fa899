package env

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbenchx/pgbenchx/input"
)

// Local provisions clusters from the PostgreSQL server binaries on this
// machine. Its zero value works: every field has a default.
type Local struct {
	Store    Store    // where state files live (default: DefaultStateDir)
	CacheDir string   // initdb templates (default: DefaultCacheDir)
	PgBin    string   // server binaries (default: FindPgBin's search)
	OSUser   string   // who runs the servers when we are root (default postgres)
	Step     StepFunc // optional progress callback, called one at a time

	stepMu sync.Mutex
}

var _ Provider = (*Local)(nil)

// LocalName is the local provider's name in the registry and in state files.
const LocalName = "local"

func init() {
	Register(LocalName, func(o Options) Provider {
		l := NewLocal()
		if o.Store.Dir != "" {
			l.Store = o.Store
		}
		if o.CacheDir != "" {
			l.CacheDir = o.CacheDir
		}
		l.PgBin, l.OSUser, l.Step = o.PgBin, o.OSUser, o.Step
		return l
	})
}

// NewLocal returns a local provider with default folders.
func NewLocal() *Local {
	return &Local{Store: Store{Dir: DefaultStateDir()}, CacheDir: DefaultCacheDir()}
}

// Name is "local".
func (l *Local) Name() string { return LocalName }

func (l *Local) defaults() {
	if l.Store.Dir == "" {
		l.Store.Dir = DefaultStateDir()
	}
	if l.CacheDir == "" {
		l.CacheDir = DefaultCacheDir()
	}
}

func (l *Local) step(step string, took time.Duration) {
	if l.Step == nil {
		return
	}
	l.stepMu.Lock()
	defer l.stepMu.Unlock()
	l.Step(step, took)
}

// timed runs fn and reports it as a step.
func (l *Local) timed(step string, fn func() error) error {
	t0 := time.Now()
	err := fn()
	if err == nil {
		l.step(step, time.Since(t0))
	}
	return err
}

// Up builds a primary and spec.Standbys standbys. On any failure, Ctrl-C
// included, it removes what it had built before returning the error.
func (l *Local) Up(ctx context.Context, spec Spec) (_ *Cluster, err error) {
	l.defaults()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := CheckProvider(LocalName, spec); err != nil {
		return nil, err
	}
	u, err := resolveOSUser(l.OSUser)
	if err != nil {
		return nil, err
	}
	if err := stackBinaries(spec); err != nil {
		return nil, err // before anything is built
	}
	bin, err := FindPgBin(ctx, l.PgBin)
	if err != nil {
		return nil, err
	}
	version, err := cachedServerVersion(ctx, l.CacheDir, bin)
	if err != nil {
		return nil, err
	}
	if err := l.clearStale(ctx, spec.Name); err != nil {
		return nil, err
	}
	c, err := l.newCluster(spec, u, bin, version)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			// Clean up with a context of our own: the caller's may be the
			// very Ctrl-C that brought us here.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if terr := l.teardown(cctx, c); terr != nil {
				err = errors.Join(err, fmt.Errorf("cleanup: %w", terr))
			}
		}
	}()
	if spec.Stack == StackPatroni {
		// Patroni builds, starts and owns the nodes; its HAProxy is the
		// env's via:haproxy.
		if err := l.timed("patroni stack", func() error { return l.upPatroni(ctx, c) }); err != nil {
			return nil, err
		}
		c.Status = statusReady
		if err := l.Store.Save(c); err != nil {
			return nil, err
		}
		return c, nil
	}
	if c.NetProxy != nil {
		// Before the standbys: their primary_conninfo names its ports.
		if err := l.timed("link proxy", func() error { return startNetProxy(ctx, c, l.Store) }); err != nil {
			return nil, err
		}
	}
	b := &builder{l: l, c: c, u: u}
	if err := b.build(ctx); err != nil {
		return nil, err
	}
	if rule := spec.Sync.String(); rule != "" {
		// Only now: standbys built with the rule in place would wait for
		// themselves.
		err := l.timed("synchronous standbys", func() error { return setSync(ctx, socketDSN(c, &c.Primary), spec.Sync) })
		if err != nil {
			return nil, fmt.Errorf("primary: synchronous_standby_names %s: %w", rule, err)
		}
		c.Sync = rule
	}
	if err := l.startProxies(ctx, c, spec); err != nil {
		return nil, err
	}
	c.Status = statusReady
	if err := l.Store.Save(c); err != nil {
		return nil, err
	}
	return c, nil
}

// startProxies starts the proxies spec asks for in front of the built
// env, each saved in the state as soon as its process runs (a crash
// while it gets ready leaves what down needs to stop it).
func (l *Local) startProxies(ctx context.Context, c *Cluster, spec Spec) error {
	for _, ps := range spec.Proxies {
		p := &Proxy{Kind: ps.Kind, Options: maps.Clone(ps.Options)}
		if p.Options == nil {
			p.Options = map[string]string{}
		}
		if spec.ReadPrimary {
			p.Options["read_primary"] = "on"
		}
		c.Proxies = append(c.Proxies, p)
		err := l.timed(ps.Kind, func() error { return startProxySaving(ctx, c, p, func() error { return l.Store.Save(c) }) })
		if serr := l.Store.Save(c); err == nil {
			err = serr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// restartProxies starts an env's proxies again after its primary
// changed: HAProxy's write port and pgpool's backends were the old
// roles. Each keeps its ports when they are still free. A Patroni
// stack's HAProxy routes by Patroni's checks and is left alone.
func restartProxies(ctx context.Context, c *Cluster) error {
	// Not the caller's context: a failover late in a run must not leave
	// the proxies stopped when the run's context ends.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	var errs []error
	for _, p := range c.Proxies {
		if p.For == StackPatroni {
			continue
		}
		if err := stopProxy(p); err != nil {
			errs = append(errs, err)
			continue
		}
		var save func() error
		if c.stateDir != "" {
			save = func() error {
				stateMu.Lock()
				defer stateMu.Unlock()
				return Store{Dir: c.stateDir}.Save(c)
			}
		}
		errs = append(errs, startProxySaving(ctx, c, p, save))
	}
	if len(c.Proxies) > 0 && c.stateDir != "" {
		stateMu.Lock()
		errs = append(errs, Store{Dir: c.stateDir}.Save(c))
		stateMu.Unlock()
	}
	return errors.Join(errs...)
}

// stackBinaries checks that what spec's proxies and stack run is
// installed, before anything is built.
func stackBinaries(spec Spec) error {
	for _, ps := range spec.Proxies {
		impl, err := proxyImplOf(ps.Kind)
		if err == nil {
			_, err = proxyBinary(ps.Kind, impl)
		}
		if err != nil {
			return input.Bad("proxy", ps.Kind, "%v (make deps installs it)", err)
		}
	}
	if spec.Stack == StackPatroni {
		for _, b := range []string{"patroni", "etcd", "haproxy"} {
			if _, err := stackBinary(b); err != nil {
				return input.Bad("stack", spec.Stack, "%v (make deps installs it)", err)
			}
		}
	}
	return nil
}

// stopProxies stops every proxy of the env.
func stopProxies(c *Cluster) error {
	var errs []error
	for _, p := range c.Proxies {
		errs = append(errs, stopProxy(p))
	}
	return errors.Join(errs...)
}

// newCluster lays out folders and claims the env's name with a state file
// before anything runs, so a crash at any later point leaves a record that
// the next `up` or `down` can clean up from.
func (l *Local) newCluster(spec Spec, u osUser, bin, version string) (*Cluster, error) {
	base, err := os.MkdirTemp(DataRoot(spec.Fast), "pgbx-"+spec.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("env %q: %w", spec.Name, err)
	}
	c := &Cluster{
		SchemaVersion: stateSchema, Name: spec.Name, Provider: l.Name(), Status: statusBuilding,
		OwnerPID: os.Getpid(), CreatedAt: time.Now().UTC(), ServerVersion: version,
		Topology: spec.Topology, Fast: spec.Fast, Settings: spec.Settings,
		PgBin: bin, OSUser: u.Name, UID: u.UID, GID: u.GID, BaseDir: base, ReplUser: "replicator", AdminUser: adminUser,
	}
	fail := func(err error) (*Cluster, error) {
		os.RemoveAll(base)
		return nil, fmt.Errorf("env %q: %w", spec.Name, err)
	}
	if err := u.chown(base); err != nil {
		return fail(err)
	}
	spreadSubdirs(base)
	// A Unix socket path is limited to 107 bytes; TMPDIR can be long.
	c.SocketDir = filepath.Join(base, "s")
	if len(c.SocketDir)+len("/.s.PGSQL.65535.lock") > 100 {
		if c.SocketDir, err = os.MkdirTemp("/tmp", "pgbx"); err != nil {
			return fail(err)
		}
		if err := u.chown(c.SocketDir); err != nil {
			return fail(err)
		}
	} else if err := u.mkdir(c.SocketDir); err != nil {
		return fail(err)
	}
	if err := os.Mkdir(filepath.Join(base, "log"), 0o755); err != nil {
		return fail(err)
	}
	if c.Primary.Password, err = newPassword(); err != nil {
		return fail(err)
	}
	if c.ReplPassword, err = newPassword(); err != nil {
		return fail(err)
	}
	node := func(name string, role Role) Node {
		return Node{
			Name: name, Role: role, Host: "127.0.0.1", User: "postgres", Password: c.Primary.Password, Database: "postgres",
			SocketDir: c.SocketDir, DataDir: filepath.Join(base, name), LogFile: filepath.Join(base, "log", name+".log"),
		}
	}
	c.Primary = node("primary", RolePrimary)
	for i := 1; i <= spec.Standbys; i++ {
		s := node(StandbyName(i), RoleStandby)
		s.Upstream = "primary"
		if spec.Topology == Cascade && i > 1 {
			s.Upstream = StandbyName(1)
		}
		s.Slot = SlotName(s.Name)
		s.ApplyDelay = spec.ApplyDelay[s.Name]
		c.Standbys = append(c.Standbys, s)
	}
	if len(spec.CPUs) > 0 {
		fs, err := findCgroupFS()
		if err != nil {
			return fail(input.Bad("cpus", "", "%v", err))
		}
		for _, n := range c.Nodes() {
			if n.CPUs = capOf(spec.CPUs, n.Name); n.CPUs == 0 {
				continue
			}
			if n.Cgroup, err = makeCgroup(fs, c.Name, n.Name, n.CPUs); err != nil {
				for _, m := range c.Nodes() {
					_ = removeCgroup(m.Cgroup)
				}
				return fail(input.Bad("cpus", "", "cannot make a cgroup: %v", err))
			}
		}
	}
	if err := planLinks(c, spec.NetLinks); err != nil {
		return fail(err)
	}
	if err := l.Store.Create(c); err != nil {
		if c.SocketDir != filepath.Join(base, "s") {
			os.RemoveAll(c.SocketDir)
		}
		return fail(err)
	}
	return c, nil
}

// clearStale removes an env of this name left by a process that died: a
// state file whose builder is gone, or whose servers are not all running.
func (l *Local) clearStale(ctx context.Context, name string) error {
	c, err := l.Store.Load(name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.Provider != "" && c.Provider != LocalName {
		// Not ours to judge or tear down: its provider's down does that.
		return fmt.Errorf("env %q is a %s env: pgbenchx env down --name %s first, or choose another --name", name, c.Provider, name)
	}
	if c.Status == statusBuilding && c.OwnerPID != os.Getpid() && processAlive(c.OwnerPID) {
		return fmt.Errorf("env %q is being built by pid %d; wait for it or choose another --name", name, c.OwnerPID)
	}
	if c.Status == statusReady && allAlive(c) {
		return &ExistsError{Name: name}
	}
	return l.timed("cleaned up stale env "+name, func() error {
		if err := l.teardown(ctx, c); err != nil {
			return fmt.Errorf("env %q: cleaning up a stale env: %w", name, err)
		}
		return nil
	})
}

func allAlive(c *Cluster) bool {
	for _, n := range c.Nodes() {
		if !postmasterAlive(n.PID, n.DataDir) {
			return false
		}
	}
	for _, p := range c.Proxies {
		if !proxyRuns(p) {
			return false
		}
	}
	if p := c.Patroni; p != nil {
		// Without etcd or a member's Patroni, the stack is not what it was.
		if !stackAlive(p.Etcd) {
			return false
		}
		for _, m := range p.Members {
			// A member killed by a failover is detached, not missing.
			if n, err := c.Node(m.Name); err == nil && n.Role != RoleDetached && !stackAlive(m) {
				return false
			}
		}
	}
	// Without its link proxy, a linked standby is cut off for good.
	return c.NetProxy == nil || NetProxyRuns(c)
}

// Alive reports which nodes of an env run: a local env's by their postmasters,
// another provider's by what its controller says.
func Alive(c *Cluster) map[string]bool {
	out := map[string]bool{}
	if c.Provider != "" && c.Provider != LocalName {
		// Another provider's nodes: what its controller says of them.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var ctl Controller
		if p, err := ProviderOf(c); err == nil {
			ctl, _ = p.Control(c)
		}
		for _, n := range c.Nodes() {
			if ctl != nil {
				st, err := ctl.State(ctx, n.Name)
				out[n.Name] = err == nil && st == NodeRunning
			}
		}
		return out
	}
	for _, n := range c.Nodes() {
		out[n.Name] = postmasterAlive(n.PID, n.DataDir) || postmasterAlive(postmasterPID(n.DataDir), n.DataDir)
	}
	return out
}

// Down stops every node of the env, drops its slots and removes its
// folders and state file.
func (l *Local) Down(ctx context.Context, name string) error {
	l.defaults()
	c, err := l.Store.Load(name)
	if err != nil {
		return err
	}
	if c.Status == statusBuilding && c.OwnerPID != os.Getpid() && processAlive(c.OwnerPID) {
		return fmt.Errorf("env %q is being built by pid %d; interrupt that process (it cleans up) or wait", name, c.OwnerPID)
	}
	return l.teardown(ctx, c)
}

// teardown thaws frozen nodes, stops standbys (leaves first), then
// detached nodes, drops the slots while the primary still runs, stops the
// primary, removes folders and, if all went well, the state file.
func (l *Local) teardown(ctx context.Context, c *Cluster) error {
	// The proxies first: nothing reaches the nodes through them while
	// they stop. Then Patroni, or it would restart the nodes stopped
	// below (it stops its own postgres).
	errs := []error{stopProxies(c)}
	if c.Patroni != nil {
		errs = append(errs, l.timed("stopped patroni stack", func() error { return stopPatroni(c) }))
	}
	// A stopped postmaster takes SIGINT only once resumed, and stopped
	// backends would outlive it holding its shared memory; a frozen
	// primary would not drop slots either.
	for _, n := range c.AllNodes() {
		pm, _ := postmasterOf(n)
		if err := thawTree(n.DataDir, pm); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.Name, err))
		}
	}
	err := l.timed("stopped standbys", func() error {
		var wg sync.WaitGroup
		var mu sync.Mutex
		// Cascade: standbys fed by standby1 stop before it.
		for _, group := range [][]*Node{leafStandbys(c), feedingStandbys(c), detachedNodes(c)} {
			for _, n := range group {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := stopNode(n); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
		}
		return nil
	})
	errs = append(errs, err)
	if len(c.Standbys) > 0 && postmasterAlive(c.Primary.PID, c.Primary.DataDir) {
		if err := dropSlots(ctx, c); err != nil {
			// Only a courtesy: the primary's folder goes next.
			l.step("slots not dropped: "+err.Error(), 0)
		}
	}
	errs = append(errs, l.timed("stopped primary", func() error { return stopNode(&c.Primary) }))
	stopNetProxy(c)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("env %q: %w (state kept in %s)", c.Name, err, l.Store.path(c.Name))
	}
	for _, n := range c.AllNodes() {
		errs = append(errs, removeCgroup(n.Cgroup))
	}
	if c.BaseDir != "" {
		errs = append(errs, os.RemoveAll(c.BaseDir))
	}
	if c.SocketDir != "" && !strings.HasPrefix(c.SocketDir, c.BaseDir+"/") {
		errs = append(errs, os.RemoveAll(c.SocketDir))
	}
	errs = append(errs, l.Store.Remove(c.Name))
	return errors.Join(errs...)
}

// stopNode stops a node's server and ends any process left working in
// its folder (the backends of a postmaster someone else killed).
func stopNode(n *Node) error {
	return errors.Join(stopServer(n), clearStrays(n.DataDir, 0))
}

func detachedNodes(c *Cluster) []*Node {
	var out []*Node
	for i := range c.Detached {
		out = append(out, &c.Detached[i])
	}
	return out
}

func leafStandbys(c *Cluster) []*Node {
	var out []*Node
	for _, n := range c.Nodes()[1:] {
		if !feeds(c, n.Name) {
			out = append(out, n)
		}
	}
	return out
}

func feedingStandbys(c *Cluster) []*Node {
	var out []*Node
	for _, n := range c.Nodes()[1:] {
		if feeds(c, n.Name) {
			out = append(out, n)
		}
	}
	return out
}

func feeds(c *Cluster, name string) bool {
	for _, s := range c.Standbys {
		if s.Upstream == name {
			return true
		}
	}
	return false
}

func dropSlots(ctx context.Context, c *Cluster) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, socketDSN(c, &c.Primary))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active AND slot_name LIKE '%\_slot'`)
	return err
}

// socketDSN reaches a node as the env's admin user over its Unix socket
// with peer authentication: how we set passwords before any exist, and
// manage nodes without them (see adminUser).
func socketDSN(c *Cluster, n *Node) string {
	user := c.AdminUser
	if user == "" {
		user = "postgres" // an env built before the admin role
	}
	return fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable application_name=pgbenchx-env", c.SocketDir, n.Port, user)
}
