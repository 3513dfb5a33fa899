package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/probe"
	"github.com/pgbenchx/pgbenchx/routing"
)

// Scenario is a run's phases in order: schema, write phase, then a read
// phase per strategy, each a function of the context, the cluster's pools
// and the recorders. It fills a metrics.Result as it goes, so whatever was
// measured before an interruption is there to be written.
type Scenario struct {
	Config Config
	// MaxApplyDelay lengthens waits for delayed standbys.
	MaxApplyDelay time.Duration

	nodes []Node
	// conns are the clients' read connections, [client][node], with the
	// reads' statement_timeout and the reads of qs prepared on each.
	conns [][]*readConn
	// connGen counts, per node, the times a client found its connection
	// there broken: the other clients' connections to it, made before,
	// are dropped before their next read rather than failing it.
	connGen []atomic.Uint64
	// cuts counts reads cut off and being cancelled in the background.
	cuts sync.WaitGroup
	qs   *querySet
	// byPort finds a node by its port (-1: several nodes share it).
	byPort map[int32]int
	// probes is one small pool per node for the lag sampler, waits and
	// counts: a read pool stuck on a frozen node must not stall them.
	probes []*pgxpool.Pool
	// primary is the index of the node that said it is not in recovery;
	// gone are the nodes out of service (an old primary). pmu guards them
	// and writer: a failover changes them during the run (failover.go).
	pmu     sync.RWMutex
	primary int
	gone    uint64
	redisc  sync.Mutex // one rediscovery at a time
	// What the writers saw acknowledged, for the durability check.
	lastWriteAck   atomic.Int64
	lastRediscover atomic.Int64
	ackMu          sync.Mutex
	acked          []int64
	// writer reaches the primary for schema, writes and heartbeat, without
	// the reads' statement_timeout.
	writer   *pgxpool.Pool
	lag      *probe.LagSampler
	hb       *probe.Heartbeat
	maxID    atomic.Int64
	hbID     int64
	bgErrors atomic.Int64
	redact   func(string) string

	// current is the read phase now running, nil outside read phases.
	current atomic.Pointer[phase]

	mu       sync.Mutex
	warnings []string
	events   []metrics.Event // outside read phases
	outages  []metrics.Outage
}

// Event tells the scenario that something happened to the cluster (a
// fault injected, a failover): it goes into the result, in the read
// phase it fell in, with its time in that phase, so reports can mark it
// on the time series and charts. Safe to call from any goroutine.
func (s *Scenario) Event(kind, node, detail string) {
	e := metrics.Event{At: time.Now().UTC(), Kind: kind, Node: node, Detail: detail}
	if ph := s.current.Load(); ph != nil && ph.event(e) {
		return
	}
	s.runEvent(e)
}

// runEvent files an event outside every read phase.
func (s *Scenario) runEvent(e metrics.Event) {
	e.T = 0
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
}

// Hooks are told of progress; all optional.
type Hooks struct {
	Phase func(msg string)
	// PhaseStart is told a phase's short name as it begins (schema,
	// write, settle, start_at, read <strategy>): what a dashboard shows.
	PhaseStart func(name string)
	Write      WriteProgress
	Live       LiveFunc
	// Measuring is told when a read phase's measured time starts (after
	// its warmup): fault schedules count from the first.
	Measuring func(strategy routing.Strategy, start time.Time)
}

// controlTimeout bounds every query that is not a read (schema checks,
// counts, LSN polls, the cost meter): a node that does not answer within
// it is reported as not answering instead of hanging the run.
const controlTimeout = 5 * time.Second

// brief bounds what runs between phases and after the last one (the cost
// meter, the next max id, the heartbeat row's removal): a phase must end
// within a query timeout and a second of its planned end, and the run then
// exit, whatever a node does.
func (s *Scenario) brief() time.Duration {
	if qt := s.Config.QueryTimeout; qt > 0 {
		return min(qt, time.Second)
	}
	return time.Second
}

// New opens the pools (pgx pools per node, routing above them: a pool
// that picks a host at connect time never rebalances), asks every node
// whether it is in recovery to find the primary (not by position or name),
// and checks that every node can take the connections the run will open,
// before anything is written. A node that cannot is bad input
// (*input.Error) naming it, the figures and the fix.
func New(ctx context.Context, nodes []Node, cfg Config) (*Scenario, error) {
	if len(nodes) == 0 {
		return nil, errors.New("workload: no nodes")
	}
	if len(nodes) > routing.MaxNodes {
		return nil, fmt.Errorf("workload: at most %d standbys", routing.MaxNodes-1)
	}
	if len(cfg.Custom) == 0 && !hasKind(cfg.Mix, "point") {
		// Session reads read back by id.
		cfg.Mix = append(cfg.Mix, Weighted{"point", 0})
	}
	// Each generator beats on its own heartbeat row (see probe.Heartbeat).
	s := &Scenario{Config: cfg, nodes: slices.Clone(nodes), hbID: 2 + rand.Int64N(1<<30)}
	var passwords []string
	for _, n := range nodes {
		pc, err := pgxpool.ParseConfig(n.DSN)
		if err != nil {
			return nil, fmt.Errorf("%s: not a valid connection string", n.Name)
		}
		passwords = append(passwords, pc.ConnConfig.Password)
	}
	for _, v := range cfg.Vias {
		pc, err := pgxpool.ParseConfig(v.DSN)
		if err != nil {
			return nil, fmt.Errorf("via:%s: not a valid connection string", v.Name)
		}
		passwords = append(passwords, pc.ConnConfig.Password)
	}
	s.redact = Redactor(passwords...)
	// A node is told by its port when no other node has it (an env on one
	// host); nodes sharing a port (hosts of a real cluster) by name.
	s.byPort = map[int32]int{}
	for i, n := range nodes {
		if pc, err := pgxpool.ParseConfig(n.DSN); err == nil {
			port := int32(pc.ConnConfig.Port)
			if _, dup := s.byPort[port]; dup {
				s.byPort[port] = -1
			} else {
				s.byPort[port] = i
			}
		}
	}
	steps := []func() error{
		func() error {
			for _, n := range s.nodes {
				if err := s.openProbe(ctx, n); err != nil {
					return err
				}
			}
			return nil
		},
		func() error { return s.findPrimary(ctx) },
		func() error {
			budget := s.connBudget()
			for i, n := range s.nodes {
				if err := s.open(ctx, i, n); err != nil {
					return err
				}
				if err := s.preflight(ctx, i, budget[i]); err != nil {
					return err
				}
			}
			return nil
		},
		func() error {
			for i := range s.nodes {
				if i != s.primary || s.readsPrimary() {
					if err := s.fill(ctx, i); err != nil {
						return err
					}
				}
			}
			for v := range s.Config.Vias {
				if err := s.fill(ctx, len(s.nodes)+v); err != nil {
					return err
				}
			}
			return nil
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// viaIndex is the index of via endpoint name in Config.Vias, -1 if none.
func (s *Scenario) viaIndex(name string) int {
	for i, v := range s.Config.Vias {
		if v.Name == name {
			return i
		}
	}
	return -1
}

// serving is the node that served a read through a via: endpoint, as it
// said: its port when one node alone listens on it, else its
// cluster_name (the node's name, or ending in -NAME as an env sets it);
// the unattributed row (len(nodes)) when it cannot be told.
func (s *Scenario) serving(rr readResult) int {
	if rr.port != 0 {
		if i, ok := s.byPort[rr.port]; ok && i >= 0 {
			return i
		}
	}
	if rr.cluster != "" {
		for i, n := range s.nodes {
			if rr.cluster == n.Name || strings.HasSuffix(rr.cluster, "-"+n.Name) {
				return i
			}
		}
	}
	return len(s.nodes)
}

// Nodes are the scenario's nodes with the roles the servers gave, as
// they are now: after a failover the new primary is one, and the old one
// is "detached" (out of service).
func (s *Scenario) Nodes() []Node {
	s.pmu.RLock()
	defer s.pmu.RUnlock()
	out := slices.Clone(s.nodes)
	for i := range out {
		if s.gone&(1<<i) != 0 {
			out[i].Role = "detached"
		}
	}
	return out
}

// findPrimary asks every node pg_is_in_recovery(), each with its own
// deadline: the one node that is not in recovery is the primary. A node
// given as a standby that is not in recovery, or the reverse, is bad
// input: the run would write where it means to read.
func (s *Scenario) findPrimary(ctx context.Context) error {
	s.primary = -1
	for i, n := range s.nodes {
		cctx, cancel := context.WithTimeout(ctx, controlTimeout)
		var inRecovery bool
		err := s.probes[i].QueryRow(cctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %s", n.Name, s.redact(err.Error()))
		}
		role := metrics.RoleStandby
		if !inRecovery {
			role = metrics.RolePrimary
			if s.primary >= 0 {
				return input.Bad(flagFor(n), n.Name, "%s and %s are both out of recovery: give one primary and its standbys", s.nodes[s.primary].Name, n.Name)
			}
			s.primary = i
		}
		if n.Role != "" && n.Role != role {
			return input.Bad(flagFor(n), n.Name, "given (or recorded in the env's state) as the %s, but the server says it is a %s (pg_is_in_recovery() is %v): check the DSNs, or pgbenchx env status", n.Role, role, inRecovery)
		}
		s.nodes[i].Role = role
	}
	if s.primary < 0 {
		return input.Bad("primary", "", "every node is in recovery: give the primary's DSN too")
	}
	return nil
}

func flagFor(n Node) string {
	if n.Role == metrics.RolePrimary {
		return "primary"
	}
	return "standby"
}

// standbys are the indexes of every node in service but the primary.
func (s *Scenario) standbys() []int {
	p, gone := s.prim(), s.outOfService()
	var out []int
	for i := range s.nodes {
		if i != p && gone&(1<<i) == 0 {
			out = append(out, i)
		}
	}
	return out
}

// closeWait bounds Close: pgx closes a connection whose read was
// abandoned by sending the server a cancel request and waiting up to 15 s
// for it to hang up, and a pool's Close waits for that. A frozen node
// never hangs up, and the run must not wait for it.
const closeWait = time.Second

// Close closes the connections, waiting at most closeWait for them to
// go, and for the cancels of reads cut off (a process that exits first
// would leave their queries running); the rest go in the background.
func (s *Scenario) Close() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.cuts.Wait() }()
	for _, p := range append(slices.Clone(s.probes), s.w()) {
		if p != nil {
			wg.Add(1)
			go func() { defer wg.Done(); p.Close() }()
		}
	}
	for _, row := range s.conns {
		for _, rc := range row {
			if rc != nil {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), closeWait)
					defer cancel()
					rc.close(ctx)
				}()
			}
		}
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeWait):
	}
}

func (s *Scenario) warn(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.warnings = append(s.warnings, fmt.Sprintf(format, args...))
}

// Run executes every phase into res. On interruption it returns
// context.Canceled with res holding what was measured.
func (s *Scenario) Run(ctx context.Context, res *metrics.Result, hooks Hooks) (err error) {
	phase := func(name, msg string) {
		res.Phases = append(res.Phases, metrics.PhaseStart{Name: name, At: time.Now().UTC(), Detail: msg})
		if hooks.PhaseStart != nil {
			hooks.PhaseStart(name)
		}
		if hooks.Phase != nil {
			hooks.Phase(msg)
		}
	}
	measuring := hooks.Measuring
	hooks.Measuring = func(strategy routing.Strategy, at time.Time) {
		res.Phases = append(res.Phases, metrics.PhaseStart{Name: "measure " + string(strategy), At: at.UTC()})
		if hooks.PhaseStart != nil {
			hooks.PhaseStart("measure " + string(strategy))
		}
		if measuring != nil {
			measuring(strategy, at)
		}
	}
	defer func() {
		s.mu.Lock()
		res.Warnings = append(res.Warnings, s.warnings...)
		res.Events = append(res.Events, s.events...)
		s.mu.Unlock()
		if s.hb != nil {
			if n := s.hb.Errors.Load(); n > 0 {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%d heartbeat commits failed on the primary: while the heartbeat stalled, staleness was unknown (left out, not counted as fresh) and time-lag bounds widened", n))
			}
		}
		if n := s.bgErrors.Load(); n > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%d background write batches failed on the primary", n))
		}
	}()
	if err := s.syncNames(ctx, res); err != nil {
		return err
	}
	notes, err := PrepareSchema(ctx, s.w())
	if err != nil {
		return err
	}
	for _, n := range notes {
		s.warn("%s", n)
	}
	s.nodeSettings(ctx, res)
	phase("schema", fmt.Sprintf("schema: %s seeded to %d rows", OrdersTable, s.Config.Scale))
	if err := s.seed(ctx); err != nil {
		return err
	}
	if err := s.refreshMaxID(ctx); err != nil {
		return err
	}
	if err := s.prepareReads(ctx); err != nil {
		return err
	}
	defer func() {
		// The row was this run's alone.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.brief())
		defer cancel()
		_, _ = s.w().Exec(cctx, `DELETE FROM `+HeartbeatTable+` WHERE id = $1`, s.hbID)
	}()
	hctx, cancel := context.WithTimeout(ctx, controlTimeout)
	s.hb, err = probe.NewHeartbeat(hctx, s.w(), HeartbeatTable, s.Config.Heartbeat, s.hbID)
	cancel()
	if err != nil {
		return fmt.Errorf("primary: heartbeat: %s", s.redact(err.Error()))
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	go s.hb.Run(bg)
	s.lag = &probe.LagSampler{Primary: s.probes[s.prim()], Interval: s.Config.LagInterval, HB: s.hb, HBTable: HeartbeatTable}
	for _, i := range s.standbys() {
		s.lag.Standbys = append(s.lag.Standbys, probe.LagTarget{Name: s.nodes[i].Name, Pool: s.probes[i]})
	}
	go s.lag.Run(bg)
	// The first round's connections and answers come before anything is
	// measured.
	s.lag.WaitRound(ctx, time.Time{}, 2*time.Second)

	if s.Config.WriteRows > 0 {
		phase("write", fmt.Sprintf("write phase: %d rows in batches of %d on the primary", s.Config.WriteRows, s.Config.WriteBatch))
		wp, err := s.writePhase(ctx, hooks.Write)
		res.Write = wp
		if err != nil {
			return err
		}
		if err := s.refreshMaxID(ctx); err != nil {
			return err
		}
	}
	defer func() {
		// What became of the acknowledged writes, whatever happened: a
		// failover may have lost some.
		if s.ackCount() == 0 {
			return
		}
		d, derr := s.durability(context.WithoutCancel(ctx))
		res.Durability = d
		if derr != nil {
			s.warn("%v", derr)
		} else if d.RowsLost > 0 {
			s.warn("%d of %d acknowledged rows are missing on %s, the primary at the end: lost in a failover", d.RowsLost, d.AcknowledgedRows, d.CheckedOn)
		}
	}()
	if at := s.Config.StartAt; !at.IsZero() {
		if wait := time.Until(at); wait > 0 {
			phase("start_at", fmt.Sprintf("waiting %s for --start-at %s", wait.Round(time.Millisecond), at.UTC().Format(time.RFC3339Nano)))
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		} else {
			s.warn("ready %s after --start-at %s: the reads started late, and other load generators' windows overlap this one's less", (-wait).Round(time.Millisecond), at.UTC().Format(time.RFC3339))
		}
	}
	for i, strategy := range s.Config.Strategies {
		if i > 0 {
			phase("settle", "settle: standbys catch up before the next strategy")
			s.settle(ctx)
		}
		phase("read "+string(strategy), fmt.Sprintf("read phase: %s, %d clients, %s warmup + %s", strategy, s.Config.Clients, s.Config.Warmup, s.Config.Duration))
		sr, err := s.readPhase(ctx, strategy, hooks)
		if sr != nil {
			res.Strategies = append(res.Strategies, sr)
			if sr.CPU.LoadGenBound {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s: the load generator used %.1f of %d cores: it, not the cluster, may have set these numbers", strategy, sr.CPU.LoadGenCores, sr.CPU.Cores))
			}
			if sr.CPU.HostSaturated {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s: the host was saturated (%.1f of %d cores busy): every node shares these cores, so this measures co-location, not what another replica adds", strategy, sr.CPU.HostBusyCores, sr.CPU.Cores))
			}
		}
		if err != nil {
			return err
		}
		if err := s.refreshMaxID(ctx); err != nil {
			return err
		}
	}
	return nil
}

// recordedSettings are the server settings a run records per node: the
// ones that shape its figures.
var recordedSettings = []string{
	"server_version", "shared_buffers", "max_connections", "work_mem", "effective_cache_size",
	"synchronous_commit", "synchronous_standby_names", "hot_standby_feedback", "max_standby_streaming_delay",
	"recovery_min_apply_delay", "wal_level", "fsync", "full_page_writes", "max_wal_senders",
	"max_slot_wal_keep_size", "wal_receiver_status_interval", "jit", "random_page_cost",
}

// nodeSettings records each node's recordedSettings, as it reports them
// (as SHOW gives them, units included); a node that does not answer
// keeps none.
func (s *Scenario) nodeSettings(ctx context.Context, res *metrics.Result) {
	for i, n := range s.nodes {
		if s.probes[i] == nil {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, s.brief())
		rows, err := s.probes[i].Query(qctx, `SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY($1) ORDER BY name`, recordedSettings)
		got := map[string]string{}
		for err == nil && rows.Next() {
			var k, v string
			if rows.Scan(&k, &v) == nil {
				got[k] = v
			}
		}
		if rows != nil {
			rows.Close()
		}
		cancel()
		for j := range res.Environment.Nodes {
			if res.Environment.Nodes[j].Name == n.Name && len(got) > 0 {
				res.Environment.Nodes[j].Settings = got
			}
		}
	}
}

// syncNames records the primary's synchronous_standby_names: whether
// its commits wait for standbys is part of what was measured.
func (s *Scenario) syncNames(ctx context.Context, res *metrics.Result) error {
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	if err := s.w().QueryRow(ctx, `SHOW synchronous_standby_names`).Scan(&res.Environment.SynchronousStandbyNames); err != nil {
		return fmt.Errorf("%s: %s", s.nodes[s.prim()].Name, s.redact(err.Error()))
	}
	return nil
}

func (s *Scenario) refreshMaxID(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.brief())
	defer cancel()
	var id int64
	if err := s.w().QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM `+OrdersTable).Scan(&id); err != nil {
		if errors.Is(err, context.Canceled) {
			return err
		}
		return fmt.Errorf("primary: %s", s.redact(err.Error()))
	}
	s.maxID.Store(id)
	return nil
}

// settle lets standbys catch up between strategies so one strategy's
// backlog is not the next one's lag. A standby that does not answer is
// not waited for.
func (s *Scenario) settle(ctx context.Context) {
	limit := s.Config.Settle + s.MaxApplyDelay
	took, err := s.waitCaughtUp(ctx, limit)
	if ctx.Err() != nil {
		return
	}
	for k, i := range s.standbys() {
		if took[k] < 0 {
			s.warn("settle: %s had not caught up within %s before the next strategy (%v)", s.nodes[i].Name, limit, err)
		}
	}
}
