package workload

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/routing"
	"github.com/pgbenchx/pgbenchx/script"
)

// Node is a server the workload talks to. Role, when given, is checked
// against what the server says (pg_is_in_recovery); empty, it is asked.
type Node struct {
	Name string
	Role metrics.Role
	DSN  string
}

// Config is a run's workload, as cmd builds it from flags.
type Config struct {
	Strategies []routing.Strategy
	Duration   time.Duration
	Warmup     time.Duration
	Clients    int
	Rate       float64 // queries/s over all clients; 0 = closed loop
	Mix        []Weighted
	Custom     []CustomQuery // --query-file
	Scripts    []ScriptFile  // -f: pgbench scripts
	// Vias are the endpoints that route by themselves (a proxy, run
	// --via NAME=DSN): strategy via:NAME sends every read to its DSN.
	Vias      []Via
	QueryFile string // its path, for the record
	// QueryFileSHA256 identifies its contents, so merge can tell the same
	// file at another path from another file.
	QueryFileSHA256 string
	Scale           int
	WriteRows       int
	WriteBatch      int
	WriteRate       float64 // background rows/s on the primary during reads
	ReadPrimary     bool
	MaxTries        int
	EjectFor        time.Duration
	MaxLagBytes     int64
	MaxLagTime      time.Duration
	LagFallback     routing.Fallback
	Weights         map[string]float64
	LagInterval     time.Duration
	// QueryTimeout bounds each try of a read: the server cancels it just
	// before (statement_timeout, 57014) and the client abandons it at the
	// limit if the server does not answer (a frozen node: client_timeout,
	// the connection discarded, the node ejected). 0 = no limit.
	QueryTimeout time.Duration
	// Heartbeat is how often the heartbeat commits: the resolution of
	// time lag and of the stale-read check.
	Heartbeat time.Duration
	Settle    time.Duration
	// SessionWrites makes each client write a row every N operations and
	// read it back next (read-your-writes); 0 = only under causal, every 10.
	SessionWrites int
	// Commit is the writers' synchronous_commit (on, remote_write,
	// remote_apply, local, off): what a commit waits for when the
	// primary has synchronous standbys. Empty leaves the server's.
	Commit string
	// SlotWarn warns when a standby's slot makes the primary keep more
	// WAL than this many bytes; 0: never.
	SlotWarn int64
	// StartAt, when set, holds the first read phase until then: load
	// generators on several machines started with one StartAt measure the
	// same seconds, as merge needs. A run ready after it starts at once,
	// with a warning.
	StartAt time.Time
	// Protocol is how reads are sent, as pgbench's -M: prepared (empty:
	// parsed once per connection), extended (parsed at every read, as
	// through a transaction pooler) or simple (one query string).
	Protocol string
	// ViaProtocol is how reads through a via: endpoint are sent; empty:
	// as Protocol. Through a pooler, a prepared statement stays on the
	// node its Parse went to (pgpool), so the CLI sends them extended
	// unless -M is given.
	ViaProtocol string
	// LocalProcesses says the servers run on this host, so walsender CPU
	// can be read from /proc.
	LocalProcesses bool
	// Throttled, when set, returns each CPU-capped node's cumulative
	// throttled seconds; a phase reports the difference.
	Throttled func() map[string]float64
}

// CausalSessionEvery is how often each client of a causal phase writes
// a row and reads it back, when --session-writes does not say.
const CausalSessionEvery = 10

// Protocols are the ways reads can be sent (pgbench's -M).
var Protocols = []string{"prepared", "extended", "simple"}

// ParseProtocol reads --protocol.
func ParseProtocol(s string) (string, error) {
	if !contains(Protocols, s) {
		return "", input.Bad("protocol", s, "want prepared, extended or simple (as pgbench's -M)")
	}
	return s, nil
}

// CommitLevels are synchronous_commit's values.
var CommitLevels = []string{"on", "remote_write", "remote_apply", "local", "off"}

// ParseCommit reads --commit.
func ParseCommit(s string) (string, error) {
	if !contains(CommitLevels, s) {
		return "", input.Bad("commit", s, "want one of %s (synchronous_commit)", strings.Join(CommitLevels, ", "))
	}
	return s, nil
}

// Weighted is one query kind of the mix.
type Weighted struct {
	Kind   string
	Weight int
}

// BuiltinKinds are the query kinds of the default mix.
var BuiltinKinds = []string{"point", "range", "report"}

// ParseMix reads --mix "point=80,range=15,report=5".
func ParseMix(s string) ([]Weighted, error) {
	bad := func(why string) error {
		return &input.Error{Flag: "mix", Value: s, Accepted: why + "; want kind=weight pairs of point, range, report, e.g. point=80,range=15,report=5"}
	}
	var out []Weighted
	seen := map[string]bool{}
	total := 0
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		w, err := strconv.Atoi(strings.TrimSpace(v))
		if !ok || err != nil || w < 0 {
			return nil, bad(fmt.Sprintf("%q is not kind=weight", item))
		}
		if !contains(BuiltinKinds, k) {
			return nil, bad(fmt.Sprintf("unknown kind %q", k))
		}
		if seen[k] {
			return nil, bad(k + " given twice")
		}
		seen[k] = true
		total += w
		out = append(out, Weighted{k, w})
	}
	if total == 0 {
		return nil, bad("weights sum to 0")
	}
	return out, nil
}

// maxQueries bounds a --query-file: query kinds are recorded in 8 bits.
const maxQueries = 200

// Via is an endpoint reads can go through: a proxy that decides which
// node serves each read (pgpool-II, HAProxy, PgCat, a Patroni stack).
type Via struct {
	Name string // via:NAME
	DSN  string
}

// ScriptFile is a pgbench script given with -f FILE[@WEIGHT]: each read
// runs it whole, on one node, as pgbench runs a transaction.
type ScriptFile struct {
	Path   string
	Weight int
	Script *script.Script
	SHA256 string
}

// CustomQuery is one line of a --query-file.
type CustomQuery struct {
	Name   string
	Weight int
	SQL    string
}

// ParseQueryFile reads lines of "name weight SQL" (# comments, blank lines
// ignored). $1, if used, is a random order id in [1, scale].
func ParseQueryFile(path string) ([]CustomQuery, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &input.Error{Flag: "query-file", Value: path, Accepted: "cannot read it: " + err.Error()}
	}
	var out []CustomQuery
	names := map[string]bool{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, " ", 3)
		w := 0
		if len(f) == 3 {
			w, err = strconv.Atoi(f[1])
		}
		if len(f) < 3 || err != nil || w <= 0 || contains(BuiltinKinds, f[0]) {
			return nil, &input.Error{Flag: "query-file", Value: fmt.Sprintf("%s:%d", path, i+1), Accepted: "want lines of: name weight SQL (e.g. big_orders 10 SELECT count(*) FROM orders WHERE amount > 900), name not point/range/report"}
		}
		if len(out) >= maxQueries {
			return nil, &input.Error{Flag: "query-file", Value: path, Accepted: fmt.Sprintf("holds more than %d queries", maxQueries)}
		}
		if names[f[0]] {
			// Kinds are keyed by name: a second one would overwrite the first's histogram.
			return nil, &input.Error{Flag: "query-file", Value: fmt.Sprintf("%s:%d", path, i+1), Accepted: fmt.Sprintf("the name %q is used twice; each query needs its own name", f[0])}
		}
		names[f[0]] = true
		out = append(out, CustomQuery{Name: f[0], Weight: w, SQL: strings.TrimSpace(f[2])})
	}
	if len(out) == 0 {
		return nil, &input.Error{Flag: "query-file", Value: path, Accepted: "holds no queries"}
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// kinds lists every query kind in a stable order: the mix's, then custom.
func (c *Config) kinds() []string {
	var out []string
	for _, m := range c.Mix {
		out = append(out, m.Kind)
	}
	for _, q := range c.Custom {
		out = append(out, q.Name)
	}
	for _, sf := range c.Scripts {
		out = append(out, sf.Script.Name)
	}
	return out
}

// Routing is the balancer configuration of this workload for the given
// nodes, the primary's index and the lag view: built in one place, for
// the run and for checking the flags before anything runs.
func (c *Config) Routing(nodes []string, primary int, lag routing.LagView) routing.Config {
	return routing.Config{
		Nodes: nodes, Primary: primary, ReadPrimary: c.ReadPrimary, Weights: c.Weights,
		MaxLagBytes: c.MaxLagBytes, MaxLagTime: c.MaxLagTime, Fallback: c.LagFallback,
		EjectFor: c.EjectFor, Lag: lag,
	}
}

// Record is the configuration as run.json keeps it. Every setting of the
// workload is in it (a test checks no field is left behind).
func (c *Config) Record() metrics.Config {
	strategies := make([]string, len(c.Strategies))
	for i, s := range c.Strategies {
		strategies[i] = string(s)
	}
	return metrics.Config{
		Strategies: strategies, Duration: metrics.Duration(c.Duration), Warmup: metrics.Duration(c.Warmup),
		Clients: c.Clients, Rate: c.Rate, Mix: c.MixMap(), QueryFile: c.QueryFile, QueryFileSHA256: c.QueryFileSHA256,
		Scale: c.Scale, WriteRows: c.WriteRows, WriteBatch: c.WriteBatch, WriteRate: c.WriteRate,
		MaxLagBytes: c.MaxLagBytes, MaxLagTime: metrics.Duration(c.MaxLagTime), LagFallback: string(c.LagFallback),
		Weights: c.Weights, ReadPrimary: c.ReadPrimary, MaxTries: c.MaxTries, EjectFor: metrics.Duration(c.EjectFor),
		LagInterval: metrics.Duration(c.LagInterval), Heartbeat: metrics.Duration(c.Heartbeat), StaleSample: 1,
		SessionWrites: c.SessionWrites, QueryTimeout: metrics.Duration(c.QueryTimeout), Commit: c.Commit,
		SlotWarnBytes: c.SlotWarn, StartAt: c.StartAt, Protocol: c.Protocol, Scripts: c.scriptInfos(), Vias: c.viaRecord(),
		ViaProtocol: c.ViaProtocol,
	}
}

// viaRecord is every via endpoint's DSN, password taken out.
func (c *Config) viaRecord() map[string]string {
	if len(c.Vias) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, v := range c.Vias {
		m[v.Name] = RedactDSNs(v.DSN)
	}
	return m
}

func (c *Config) scriptInfos() []metrics.ScriptInfo {
	var out []metrics.ScriptInfo
	for _, sf := range c.Scripts {
		out = append(out, metrics.ScriptInfo{Name: sf.Script.Name, File: sf.Path, Weight: sf.Weight, SHA256: sf.SHA256, Text: sf.Script.Text})
	}
	return out
}

// MixMap is the mix as a map, for the result's configuration.
func (c *Config) MixMap() map[string]int {
	m := map[string]int{}
	for _, w := range c.Mix {
		m[w.Kind] = w.Weight
	}
	for _, q := range c.Custom {
		m[q.Name] = q.Weight
	}
	for _, sf := range c.Scripts {
		m[sf.Script.Name] = sf.Weight
	}
	return m
}
