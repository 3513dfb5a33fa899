package routing

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/pgbenchx/pgbenchx/input"
)

// Strategy names, as users type them.
type Strategy string

// The strategies.
const (
	Random     Strategy = "random"
	RoundRobin Strategy = "round-robin"
	LeastConn  Strategy = "least-conn"
	LagAware   Strategy = "lag-aware"
	Causal     Strategy = "causal"
	Nearest    Strategy = "nearest"
)

// All lists every strategy in that order.
var All = []Strategy{Random, RoundRobin, LeastConn, LagAware, Causal, Nearest}

// Outcome is how a query on a node went, as the caller classifies it.
type Outcome int

// The outcomes.
const (
	OK        Outcome = iota
	Failed            // the query failed but the node is fine (e.g. SQLSTATE 40001 conflict with recovery)
	ConnError         // connection-class failure: eject the node for EjectFor
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Failed:
		return "failed"
	case ConnError:
		return "conn-error"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Request carries what a pick may depend on.
type Request struct {
	MinLSN  uint64 // causal: the client's last write LSN (0 = none yet)
	Exclude uint64 // bitmask of node indexes not to use (nodes that already failed this query, for retries)
}

// ErrNoTarget means no node can take the read: all ejected or excluded, or
// lag-aware with FallbackError and no standby within the max lag.
var ErrNoTarget = errors.New("routing: no node can take the read")

// Lag is the last sample of a standby's lag.
type Lag struct {
	Bytes int64 // primary's current LSN minus the standby's replay LSN, at the sample
	// BytesUnknown says Bytes is not known (the primary did not answer
	// that round) while the standby's other figures are.
	BytesUnknown bool
	Time         time.Duration // heartbeat time lag at the sample: the most the standby may have been behind
	TimeKnown    bool          // Time is meaningful
	ReplayLSN    uint64        // the standby's pg_last_wal_replay_lsn() at the sample
}

// LagView gives the latest lag sample per node. ok is false when the node's
// lag is unknown (never sampled, or unreachable at the last sample): unknown
// is never treated as zero lag. Seq increases by one (or more) each time a
// new sample round is published; it must not move before the round's
// samples are visible through Lag, or that round is read as the previous one.
type LagView interface {
	Lag(node string) (l Lag, ok bool)
	Seq() uint64
}

// MaxNodes is the largest cluster a balancer handles (node sets are uint64 masks).
const MaxNodes = 64

// Defaults applied by New to zero Config fields.
const (
	DefaultHysteresis = 3
	DefaultEjectFor   = 5 * time.Second
)

// Config describes the nodes and the knobs. Nodes[Primary] is the primary
// (the fallback of lag-aware and causal), the others are standbys: the
// caller finds out which node is the primary (by asking the servers), the
// balancer does not assume a position. The primary is a normal read
// target only when ReadPrimary is true.
type Config struct {
	Nodes       []string
	Primary     int // index into Nodes
	ReadPrimary bool
	Weights     map[string]float64 // random only; nil = uniform; a node absent from the map has weight 0 when the map is non-nil
	MaxLagBytes int64              // lag-aware: 0 = no byte limit
	MaxLagTime  time.Duration      // lag-aware: 0 = no time limit (if TimeKnown is false while MaxLagTime>0, the standby counts as over)
	Fallback    Fallback           // lag-aware; default FallbackPrimary
	Hysteresis  int                // lag-aware: K consecutive samples over the limit to leave, K under to come back; 0 = default 3, 1 = follow every sample
	EjectFor    time.Duration      // default 5s
	Lag         LagView            // required for lag-aware and causal
	Now         func() time.Time   // for tests; default time.Now
	// Ejections, when set, is told when a node is ejected (a connection
	// error while it was in service) and when its ejection has run out
	// and it is tried again: transitions only, off the hot path.
	Ejections func(node int, ejected bool)
}

// Balancer picks a node for each read and learns how it went. Its methods
// are safe for concurrent use.
type Balancer interface {
	// Pick returns an index into Config.Nodes. Every successful Pick must be followed by exactly one Done.
	Pick(req Request) (int, error)
	Done(node int, o Outcome)
	// InFlight returns the node's current number of picked-but-not-done queries (for tests and reports).
	InFlight(node int) int64
	// SetRoles makes node primary the primary and takes the nodes of the
	// bitmask gone out of service: how a balancer learns of a failover.
	SetRoles(primary int, gone uint64)
}

var (
	_ Balancer = (*random)(nil)
	_ Balancer = (*roundRobin)(nil)
	_ Balancer = (*leastConn)(nil)
	_ Balancer = (*lagAware)(nil)
	_ Balancer = (*causal)(nil)
	_ Balancer = (*nearest)(nil)
)

// New returns the balancer of a strategy. Mistakes a user can make with a
// flag come back as *input.Error; mistakes of the calling code as plain errors.
func New(s Strategy, cfg Config) (Balancer, error) {
	if _, ok := ViaName(s); ok {
		return &via{}, nil
	}
	if !slices.Contains(All, s) {
		return nil, &input.Error{Flag: "strategies", Value: string(s), Accepted: acceptedStrategies}
	}
	b, err := newBase(cfg)
	if err != nil {
		return nil, err
	}
	switch s {
	case Random:
		return newRandom(b, cfg)
	case RoundRobin:
		return &roundRobin{b}, nil
	case LeastConn:
		return &leastConn{b}, nil
	case LagAware:
		return newLagAware(b, cfg)
	case Causal:
		return newCausal(b, cfg)
	case Nearest:
		return &nearest{base: b}, nil
	}
	// A strategy in All but not here is a bug of ours, not a silent causal.
	return nil, fmt.Errorf("routing: strategy %q has no balancer", s)
}

func newBase(cfg Config) (*base, error) {
	n := len(cfg.Nodes)
	switch {
	case n == 0:
		return nil, errors.New("routing: no nodes")
	case cfg.Primary < 0 || cfg.Primary >= n:
		return nil, fmt.Errorf("routing: Primary %d: want an index into the %d nodes", cfg.Primary, n)
	case n > MaxNodes:
		return nil, fmt.Errorf("routing: %d nodes, at most %d", n, MaxNodes)
	case n == 1 && !cfg.ReadPrimary:
		return nil, errors.New("routing: no read target: no standby, and the primary takes no reads (ReadPrimary is false)")
	case cfg.EjectFor < 0:
		return nil, fmt.Errorf("routing: EjectFor %v: must be >= 0", cfg.EjectFor)
	}
	for i, name := range cfg.Nodes {
		if name == "" {
			return nil, fmt.Errorf("routing: node %d has no name", i)
		}
		if j := slices.Index(cfg.Nodes, name); j != i {
			return nil, fmt.Errorf("routing: nodes %d and %d are both named %q", j, i, name)
		}
	}
	b := &base{
		names:       cfg.Nodes,
		nodes:       make([]node, n),
		all:         lowBits(n),
		readPrimary: cfg.ReadPrimary,
		ejectFor:    cfg.EjectFor,
		now:         cfg.Now,
		ejections:   cfg.Ejections,
	}
	b.setRoles(cfg.Primary, 0)
	if b.ejectFor == 0 {
		b.ejectFor = DefaultEjectFor
	}
	if b.now == nil {
		b.now = time.Now
	}
	b.start = b.now()
	return b, nil
}

func newRandom(b *base, cfg Config) (Balancer, error) {
	if cfg.Weights == nil {
		return &random{base: b}, nil
	}
	for name, w := range cfg.Weights {
		i := slices.Index(b.names, name)
		bad := &input.Error{Flag: "weights", Value: fmt.Sprintf("%s=%g", name, w), Accepted: weightsAccepted(b)}
		switch {
		case i < 0:
			bad.Reason = "no node " + input.Quote(name)
			return nil, bad
		case b.roles.Load().targets&(1<<i) == 0:
			bad.Reason = "the primary takes no reads unless reads on the primary are enabled"
			return nil, bad
		case !(w >= 0) || math.IsInf(w, 0):
			bad.Reason = "weight must be a number >= 0"
			return nil, bad
		}
	}
	r := &random{base: b, weights: make([]float64, len(b.nodes))}
	for i, name := range b.names {
		if w := cfg.Weights[name]; w > 0 {
			r.weights[i] = w
		} else {
			// A zero weight means never: dropping the node from the targets
			// is what keeps it out even when every other target is ejected.
			b.never |= 1 << i
		}
	}
	b.setRoles(cfg.Primary, 0)
	if b.roles.Load().targets == 0 {
		return nil, &input.Error{Flag: "weights", Value: formatWeights(cfg.Weights),
			Reason: "no read target has a weight > 0", Accepted: weightsAccepted(b)}
	}
	return r, nil
}

// weightsAccepted names the nodes --weights may set, for error messages.
func weightsAccepted(b *base) string {
	var names []string
	for m := b.roles.Load().targets; m != 0; m &= m - 1 {
		names = append(names, b.names[lowest(m)])
	}
	return "accepted: name=weight for the read targets (" + strings.Join(names, ", ") + "), weights >= 0, at least one > 0"
}

func formatWeights(w map[string]float64) string {
	parts := make([]string, 0, len(w))
	for name, v := range w {
		parts = append(parts, fmt.Sprintf("%s=%g", name, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func lowBits(n int) uint64 {
	if n >= 64 {
		return math.MaxUint64
	}
	return 1<<n - 1
}
