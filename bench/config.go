package bench

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/report"
	"github.com/pgbenchx/pgbenchx/routing"
	"github.com/pgbenchx/pgbenchx/script"
	"github.com/pgbenchx/pgbenchx/workload"
)

// Config is one benchmark: what to run (Workload), on which cluster
// (Target), what to keep (Output) and what must hold (Thresholds). Start
// from Default, change what you need, and Validate: every rule a flag
// obeys on the command line is here, so a Go program gets the same
// errors (*input.Error) a user does.
type Config struct {
	Workload   workload.Config
	Target     Target
	Output     Output
	Thresholds []report.Gate
	// Faults are injected on the env's nodes while the reads are
	// measured (ParseFault reads --fault's AT:ACTION:NODE).
	Faults []Fault
	// Sweep, when set, repeats the run at several clients or rates
	// (RunSweep); Workload's Clients or Rate is then the first level's.
	Sweep *Sweep
	// Command is the command line that asked for the run, recorded in
	// run.json with every password taken out.
	Command []string
}

// Output says where a run's folder goes and what it holds.
type Output struct {
	Dir     string   // the parent folder; the run's is <Dir>/<time>-<label>
	Label   string   // a word for the folder's name; default the strategies
	Formats []string // report.FormatMD, FormatCSV, FormatJSON
}

// Target is the cluster to measure: an env by name, provisioned from
// Spec when it is not up (and removed afterwards unless Keep), or an
// existing cluster given by DSNs (PrimaryDSN, StandbyDSNs), where nothing
// but pgbenchx's own schema is touched.
type Target struct {
	Env      string   // env name; default env.DefaultName
	Provider string   // provider that builds it when it is not up; default "local"
	Spec     env.Spec // how to build it (Name is Env's)
	// WantStandbys refuses an env that is up with another standby count;
	// AnyStandbys (Default's) takes the env as it is.
	WantStandbys int
	Keep         bool // keep an env this run provisioned

	PrimaryDSN  string   // an existing cluster's primary
	StandbyDSNs []string // and its standbys, in order: standby1, standby2, ...
	// Image is the docker provider's image for an env it builds (zero:
	// env.DefaultImage).
	Image string
	// Socket reaches an env's nodes through their Unix sockets, not TCP
	// on 127.0.0.1: for co-located runs, where loopback TCP's cost is the
	// client's and the servers' both.
	Socket bool
}

// AnyStandbys is WantStandbys for "whatever the env has".
const AnyStandbys = -1

// External says the target is an existing cluster given by DSNs.
func (t Target) External() bool { return t.PrimaryDSN != "" }

// Default is the configuration the CLI starts from: round-robin, 16
// clients, 30 s after a 2 s warmup, the default mix, on the default env
// with 2 standbys.
func Default() Config {
	mix, _ := workload.ParseMix(DefaultMix)
	return Config{
		Workload: workload.Config{
			Strategies: []routing.Strategy{routing.RoundRobin}, Duration: 30 * time.Second, Warmup: 2 * time.Second,
			Clients: 16, Mix: mix, Scale: 100000, WriteRows: 10000, WriteBatch: 100, WriteRate: 200,
			MaxTries: 2, EjectFor: 5 * time.Second, MaxLagBytes: 1 << 20, MaxLagTime: 500 * time.Millisecond,
			LagFallback: routing.FallbackPrimary, LagInterval: 100 * time.Millisecond, QueryTimeout: 10 * time.Second,
			Heartbeat: 0, Settle: 30 * time.Second, Commit: "on", // heartbeat 0: as the reads need (Validate)
			SlotWarn: 1 << 30,
		},
		Target: Target{Env: env.DefaultName, Provider: "local", Spec: env.Spec{Standbys: 2}, WantStandbys: AnyStandbys},
		Output: Output{Dir: "results", Formats: []string{report.FormatJSON, report.FormatCSV, report.FormatMD}},
	}
}

// DefaultMix is the built-in read mix.
const DefaultMix = "point=80,range=15,report=5"

var labelRE = regexp.MustCompile(`^[A-Za-z0-9._+-]{1,64}$`)

// DefaultHeartbeat is the heartbeat of runs whose reads check staleness:
// a read is found stale by the heartbeats it missed, so this is the
// check's resolution.
const DefaultHeartbeat = 10 * time.Millisecond

// AutoHeartbeat is the heartbeat a workload gets when none is given:
// DefaultHeartbeat when built-in reads check staleness; else (--query-file
// reads only, which have no stale-read check) the lag interval, within
// 10ms..1s: the heartbeat then serves only time lag, which is sampled that
// often, and a commit every 10 ms on the primary would cost the cluster
// measured for nothing (measured here: 8-11% of the reads/s a 2-core host
// serves).
func AutoHeartbeat(w workload.Config) time.Duration {
	if len(w.Mix) > 0 {
		return DefaultHeartbeat
	}
	return min(max(w.LagInterval, DefaultHeartbeat), time.Second)
}

// Validate checks every setting and fills the defaults that depend on
// others (the label). The first bad one comes back as *input.Error.
func (c *Config) Validate() error {
	if c.Sweep != nil {
		// Every level as its own run would be checked; then the rest
		// (defaults included) on the first.
		if err := c.Sweep.validate(*c); err != nil {
			return err
		}
	}
	w := &c.Workload
	if w.Heartbeat == 0 {
		w.Heartbeat = AutoHeartbeat(*w)
	}
	checks := []struct {
		bad                   bool
		flag, value, accepted string
	}{
		{len(w.Strategies) == 0, "strategies", "", "name at least one: random, round-robin, least-conn, lag-aware, causal, nearest or all"},
		{w.Duration < time.Second || w.Duration > 24*time.Hour, "duration", w.Duration.String(), "want 1s to 24h"},
		{w.Warmup < 0 || w.Warmup > time.Hour, "warmup", w.Warmup.String(), "want 0 to 1h"},
		{w.Clients < 1 || w.Clients > 1024, "clients", fmt.Sprint(w.Clients), "want 1 to 1024"},
		{w.Rate < 0 || w.Rate > 1e6 || (w.Rate > 0 && w.Rate < 1), "rate", fmt.Sprint(w.Rate), "want 0 (closed loop) or 1 to 1000000 queries/s"},
		{len(w.Mix) == 0 && len(w.Custom) == 0 && len(w.Scripts) == 0, "mix", "", "give a mix, a --query-file or -f scripts"},
		{w.Scale < 100 || w.Scale > 1e9, "scale", fmt.Sprint(w.Scale), "want 100 to 1000000000 rows"},
		{w.WriteRows < 0 || w.WriteRows > 1e9, "write-rows", fmt.Sprint(w.WriteRows), "want 0 to 1000000000"},
		{w.WriteBatch < 1 || w.WriteBatch > 100000, "write-batch", fmt.Sprint(w.WriteBatch), "want 1 to 100000"},
		{w.WriteRate < 0 || w.WriteRate > 1e6, "write-rate", fmt.Sprint(w.WriteRate), "want 0 to 1000000 rows/s"},
		{w.MaxTries < 1 || w.MaxTries > 10, "max-tries", fmt.Sprint(w.MaxTries), "want 1 to 10"},
		{w.QueryTimeout < 0 || (w.QueryTimeout > 0 && w.QueryTimeout < time.Millisecond) || w.QueryTimeout > time.Hour,
			"query-timeout", w.QueryTimeout.String(), "want 0 (none) or 1ms to 1h"},
		{w.LagInterval < 10*time.Millisecond || w.LagInterval > 10*time.Second, "lag-interval", w.LagInterval.String(), "want 10ms to 10s"},
		{w.EjectFor < 0 || w.EjectFor > time.Hour, "eject-for", w.EjectFor.String(), "want 0 to 1h"},
		{w.Heartbeat < time.Millisecond || w.Heartbeat > 10*time.Second, "heartbeat", w.Heartbeat.String(), "want 1ms to 10s"},
		{w.SlotWarn < 0, "slot-warn", fmt.Sprint(w.SlotWarn), "want a size like 1GB, or off"},
		{w.Commit != "" && !slices.Contains(workload.CommitLevels, w.Commit), "commit", w.Commit, "want on, remote_write, remote_apply, local or off (synchronous_commit)"},
		{len(c.Output.Formats) == 0, "format", "", "name at least one of md, csv, json, or all"},
		{c.Output.Label != "" && !labelRE.MatchString(c.Output.Label), "label", c.Output.Label, "want 1-64 characters of letters, digits, '.', '-', '_' or '+'"},
	}
	for _, ch := range checks {
		if ch.bad {
			return input.Bad(ch.flag, ch.value, ch.accepted)
		}
	}
	for i, s := range w.Strategies {
		name, via := routing.ViaName(s)
		if !slices.Contains(routing.All, s) && !(via && routing.ValidViaName(name)) {
			return input.Bad("strategies", string(s), "want random, round-robin, least-conn, lag-aware, causal, nearest, all or via:NAME")
		}
		if slices.Contains(w.Strategies[:i], s) {
			return input.Bad("strategies", string(s), "named twice: each strategy runs once")
		}
	}
	switch w.LagFallback {
	case routing.FallbackPrimary, routing.FallbackLeastLagged, routing.FallbackError:
	default:
		return input.Bad("lag-fallback", string(w.LagFallback), "want primary, least-lagged or error")
	}
	if c.Output.Label == "" {
		c.Output.Label = defaultLabel(w.Strategies)
	}
	t := &c.Target
	if !t.External() && len(t.StandbyDSNs) > 0 {
		return input.Bad("standby", "", "needs --primary too")
	}
	if t.Socket && len(t.Spec.NetLinks) > 0 {
		return input.Bad("socket", "", "the env to build has slow links (--net-delay/--net-bandwidth): a Unix socket would go around them")
	}
	if t.Socket && t.Provider == env.DockerName {
		return input.Bad("socket", "", "is for a local env: a docker env's sockets are in its containers")
	}
	if t.External() {
		if t.Socket {
			return input.Bad("socket", "", "is for an env pgbenchx builds; to reach an existing cluster through a Unix socket, put its folder in the DSN (host=/var/run/postgresql)")
		}
		return checkFaults(c.Faults, *t, *w, nil)
	}
	if t.Env == "" {
		t.Env = env.DefaultName
	}
	if err := env.ValidateName(t.Env); err != nil {
		return err
	}
	t.Spec.Name = t.Env
	// The spec is used only if the env is not up, but a bad one is bad
	// input either way, and must be refused before anything is built.
	if err := t.Spec.Validate(); err != nil {
		return err
	}
	// A flag naming a node the env will not have (--weights standby3=1
	// with 2 standbys) fails here, not after the env is built.
	if _, err := env.Lookup(t.Provider); err != nil {
		return err
	}
	if err := env.CheckProvider(t.Provider, t.Spec); err != nil {
		return err
	}
	if err := checkRouting(*w, specNodes(t.Spec)); err != nil {
		return err
	}
	// An env that is up may have another standby count than the spec:
	// Measure checks the faults again on the nodes it has.
	if t.WantStandbys != AnyStandbys || !envUp(t.Env) {
		linked := map[string]bool{}
		for n := range t.Spec.NetLinks {
			linked[n] = true
		}
		if err := checkLinkFaults(c.Faults, linked); err != nil {
			return err
		}
		return checkFaults(c.Faults, *t, *w, specNodes(t.Spec))
	}
	return checkFaults(c.Faults, *t, *w, nil)
}

// envUp says whether a state file for the env exists.
func envUp(name string) bool {
	_, err := (env.Store{Dir: env.DefaultStateDir()}).Load(name)
	return err == nil
}

// UseQueryFile makes the reads those of a --query-file: parsed, recorded
// by path and contents, and replacing the built-in mix unless keepMix.
func (c *Config) UseQueryFile(path string, keepMix bool) error {
	custom, err := workload.ParseQueryFile(path)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return input.Bad("query-file", path, "cannot read it: %v", err)
	}
	c.Workload.Custom, c.Workload.QueryFile = custom, path
	c.Workload.QueryFileSHA256 = fmt.Sprintf("%x", sha256.Sum256(b))
	if !keepMix {
		c.Workload.Mix = nil
	}
	return nil
}

// noViaWithoutEndpoint refuses via:NAME strategies for a command that
// builds its own envs (matrix, capacity): they have no proxy, and only
// run takes --via.
func noViaWithoutEndpoint(ss []routing.Strategy, what string) error {
	for _, s := range ss {
		if _, ok := routing.ViaName(s); ok {
			return input.Bad("strategies", string(s), "%s builds its own envs, which have no proxies: measure via: endpoints with pgbenchx run (--via NAME=DSN, or an env up with --proxy)", what)
		}
	}
	return nil
}

// UseScripts makes the reads those of pgbench scripts, -f FILE[@WEIGHT]
// each (weight 1 by default): parsed, named by the file's stem, recorded
// with their text and hash, replacing the built-in mix unless keepMix.
func (c *Config) UseScripts(specs []string, keepMix bool) error {
	names := map[string]bool{}
	for _, k := range workload.BuiltinKinds {
		names[k] = true
	}
	for _, q := range c.Workload.Custom {
		names[q.Name] = true
	}
	for _, spec := range specs {
		path, weight := spec, 1
		if i := strings.LastIndex(spec, "@"); i > 0 {
			w, err := strconv.Atoi(spec[i+1:])
			if err != nil || w < 1 {
				return input.Bad("file", spec, "want FILE or FILE@WEIGHT with a weight of 1 or more, e.g. lookup.sql@2")
			}
			path, weight = spec[:i], w
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return input.Bad("file", path, "cannot read it: %v", err)
		}
		name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		if names[name] {
			return input.Bad("file", path, "its name %q (the file's stem) is taken by a built-in read, a query file's query or another script: rename the file", name)
		}
		names[name] = true
		sc, err := script.Parse(name, string(b))
		if err != nil {
			return input.Bad("file", path, "%v", err)
		}
		if missing := sc.MissingVars(map[string]int64{"scale": 0, "client_id": 0, "random_seed": 0, "default_seed": 0}); len(missing) > 0 {
			return input.Bad("file", path, "uses variables nothing sets: :%s (\\set them; :scale, :client_id, :random_seed and :default_seed are given)", strings.Join(missing, ", :"))
		}
		c.Workload.Scripts = append(c.Workload.Scripts, workload.ScriptFile{Path: path, Weight: weight, Script: sc,
			SHA256: fmt.Sprintf("%x", sha256.Sum256(b))})
	}
	if len(specs) > 0 && !keepMix {
		c.Workload.Mix = nil
	}
	return nil
}

// specNodes are the nodes an env built from spec has, for checks made
// before it exists.
func specNodes(spec env.Spec) []workload.Node {
	nodes := []workload.Node{{Name: "primary", Role: metrics.RolePrimary}}
	for i := 1; i <= spec.Standbys; i++ {
		nodes = append(nodes, workload.Node{Name: env.StandbyName(i), Role: metrics.RoleStandby})
	}
	return nodes
}

// defaultLabel names a run by its strategies ("all" for every one).
func defaultLabel(ss []routing.Strategy) string {
	if len(ss) == len(routing.All) {
		return "all"
	}
	names := make([]string, len(ss))
	for i, s := range ss {
		// A folder name: via:pgpool becomes via-pgpool.
		names[i] = strings.ReplaceAll(string(s), ":", "-")
	}
	return strings.Join(names, "+")
}
