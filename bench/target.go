package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/workload"
)

// Cluster is a resolved target: the nodes to measure and how the report
// describes them. Close lets go of it (and removes an env it built).
type Cluster struct {
	Nodes       []workload.Node
	Environment metrics.Environment
	// Env is the env measured; nil for an external cluster.
	Env *env.Cluster
	// Vias are the env's proxies as via: endpoints (via:pgpool,
	// via:haproxy), besides those given with run --via.
	Vias          []workload.Via
	MaxApplyDelay time.Duration
	release       func()
}

// Close removes an env the target provisioned (unless kept).
func (c *Cluster) Close() {
	if c != nil && c.release != nil {
		c.release()
	}
}

// Open resolves t: an existing cluster's DSNs, the env named t.Env if it
// is up, or a new env built by t.Provider from t.Spec. say is told what
// it does (may be nil).
func Open(ctx context.Context, t Target, say func(string)) (*Cluster, error) {
	if say == nil {
		say = func(string) {}
	}
	if t.External() {
		return external(ctx, t.PrimaryDSN, t.StandbyDSNs)
	}
	store := env.Store{Dir: env.DefaultStateDir()}
	c, err := store.Load(t.Env)
	var release func()
	switch {
	case err == nil:
		if t.WantStandbys != AnyStandbys && t.WantStandbys != len(c.Standbys) {
			return nil, input.Bad("standbys", fmt.Sprint(t.WantStandbys), "env %q is up with %d standbys; use --standbys %d, another --name, or pgbenchx env down --name %s",
				t.Env, len(c.Standbys), len(c.Standbys), t.Env)
		}
		alive := env.Alive(c)
		for _, n := range c.Nodes() {
			if !alive[n.Name] {
				return nil, fmt.Errorf("env %q: %s is not running (pgbenchx env status --name %s; or env down and run again)", t.Env, n.Name, t.Env)
			}
		}
		say(fmt.Sprintf("using env %q (%d standbys)", t.Env, len(c.Standbys)))
	case errors.Is(err, env.ErrNotFound):
		spec := t.Spec
		spec.Name = t.Env
		if err := spec.Validate(); err != nil {
			return nil, err
		}
		p, err := env.Lookup(t.Provider, env.Options{Image: t.Image})
		if err != nil {
			return nil, err
		}
		say(fmt.Sprintf("no env %q is up: provisioning a primary + %d standbys", t.Env, spec.Standbys))
		t0 := time.Now()
		if c, err = p.Up(ctx, spec); err != nil {
			return nil, err
		}
		say(fmt.Sprintf("env up in %.2fs", time.Since(t0).Seconds()))
		if !t.Keep {
			release = func() {
				if err := p.Down(context.WithoutCancel(ctx), t.Env); err != nil {
					say(fmt.Sprintf("env down: %v", err))
				}
			}
		}
	default:
		return nil, err
	}
	out := Describe(c)
	out.release = release
	if t.Socket {
		if err := out.ViaSockets(); err != nil {
			out.Close()
			return nil, err
		}
	}
	return out, nil
}

// ViaSockets makes every connection to the env's nodes go through their
// Unix sockets; run.json says so (environment.unix_socket).
func (c *Cluster) ViaSockets() error {
	if c.Env == nil {
		return input.Bad("socket", "", "is for an env pgbenchx builds")
	}
	for _, n := range c.Env.Nodes() {
		if n.Link != nil {
			return input.Bad("socket", "", "env %q's %s sits behind a slow link (--net-delay/--net-bandwidth): a Unix socket would go around it", c.Env.Name, n.Name)
		}
	}
	for i, n := range c.Env.Nodes() {
		dsn := n.SocketDSN()
		if dsn == "" {
			return input.Bad("socket", "", "env %q's %s has no Unix socket (provider %s): run without --socket", c.Env.Name, n.Name, c.Env.Provider)
		}
		c.Nodes[i].DSN = dsn
		c.Environment.Nodes[i].DSN = n.RedactedSocketDSN()
	}
	c.Environment.UnixSocket = true
	return nil
}

// Describe is how a run sees an env: its nodes (full DSNs) and how the
// report describes it (redacted DSNs, settings, caps).
func Describe(c *env.Cluster) *Cluster {
	out := &Cluster{Env: c}
	e := metrics.Environment{
		Provider: c.Provider, Name: c.Name, ServerVersion: c.ServerVersion, Standbys: len(c.Standbys),
		Topology: string(c.Topology), Fast: c.Fast, Cores: runtime.NumCPU(), ApplyDelays: map[string]string{},
	}
	if caps := env.CPUCaps(c); len(caps) > 0 {
		e.CPUCaps = caps
	}
	if caps := env.MemoryCaps(c); len(caps) > 0 {
		e.MemoryCaps = caps
	}
	for _, st := range c.Settings {
		e.Settings = append(e.Settings, st.Key+"="+st.Value)
	}
	for _, n := range c.Nodes() {
		out.Nodes = append(out.Nodes, workload.Node{Name: n.Name, Role: n.Role, DSN: n.DSN()})
		e.Nodes = append(e.Nodes, metrics.NodeInfo{Name: n.Name, Role: n.Role, DSN: n.RedactedDSN()})
		if n.Link != nil {
			if e.NetLinks == nil {
				e.NetLinks = map[string]string{}
			}
			e.NetLinks[n.Name] = n.Link.String()
		}
		if n.ApplyDelay > 0 {
			e.ApplyDelays[n.Name] = n.ApplyDelay.String()
			out.MaxApplyDelay = max(out.MaxApplyDelay, n.ApplyDelay)
		}
	}
	for _, p := range c.Proxies {
		// As the nodes' user: the proxy logs in to them as the client did.
		out.Vias = append(out.Vias, workload.Via{Name: p.Name(), DSN: p.DSN(&c.Primary, c.Primary.Password)})
		if e.Proxies == nil {
			e.Proxies = map[string]string{}
		}
		e.Proxies[p.Name()] = p.Describe()
	}
	e.Stack = c.Stack
	if h, err := os.Hostname(); err == nil {
		e.Host = h
	}
	out.Environment = e
	return out
}

// external describes a cluster given by DSNs. Nothing there is
// provisioned or changed except pgbenchx's own schema. The primary is
// reached once here, so an unreachable cluster fails in seconds, naming
// the node, without its password.
func external(ctx context.Context, primary string, standbys []string) (*Cluster, error) {
	out := &Cluster{}
	out.Environment = metrics.Environment{Provider: "external", Standbys: len(standbys), Cores: runtime.NumCPU()}
	for i, dsn := range append([]string{primary}, standbys...) {
		name, role, flag := "primary", metrics.RolePrimary, "primary"
		if i > 0 {
			name, role, flag = env.StandbyName(i), metrics.RoleStandby, "standby"
		}
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			// pgx's message can quote the DSN: never echo it, password and all.
			return nil, input.Bad(flag, fmt.Sprintf("(DSN %d)", i+1), "not a valid PostgreSQL connection string (URL or key=value)")
		}
		n := env.Node{Name: name, Role: role, Host: cfg.Host, Port: int(cfg.Port), User: cfg.User, Password: cfg.Password, Database: cfg.Database}
		out.Nodes = append(out.Nodes, workload.Node{Name: name, Role: role, DSN: dsn})
		out.Environment.Nodes = append(out.Environment.Nodes, metrics.NodeInfo{Name: name, Role: role, DSN: n.RedactedDSN()})
		if i > 0 {
			continue
		}
		if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > 5*time.Second {
			cfg.ConnectTimeout = 5 * time.Second
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		conn, err := pgx.ConnectConfig(cctx, cfg)
		if err == nil {
			_ = conn.QueryRow(cctx, `SHOW server_version`).Scan(&out.Environment.ServerVersion)
			conn.Close(cctx)
		}
		cancel()
		if err != nil {
			return nil, fmt.Errorf("primary %s: %s", n.RedactedDSN(), oneLine(workload.Redactor(cfg.Password)(err.Error())))
		}
	}
	return out, nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
