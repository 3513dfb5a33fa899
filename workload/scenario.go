package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbenchx/pgbenchx/metrics"
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
	pools []*pgxpool.Pool // one per node, for reads: statement_timeout applies
	// writer reaches the primary for everything but reads (schema, writes,
	// heartbeat, lag sampling), without the reads' statement_timeout.
	writer   *pgxpool.Pool
	lag      *metrics.LagSampler
	hb       *metrics.Heartbeat
	maxID    atomic.Int64
	hbID     int64
	bgErrors atomic.Int64

	mu       sync.Mutex
	warnings []string
}

// Hooks are told of progress; all optional.
type Hooks struct {
	Phase func(msg string)
	Write WriteProgress
	Live  LiveFunc
}

// New opens one pool per node (pgx pools per node, routing above them:
// a pool that picks a host at connect time never rebalances).
func New(ctx context.Context, nodes []Node, cfg Config) (*Scenario, error) {
	if len(nodes) == 0 || nodes[0].Role != "primary" {
		return nil, errors.New("workload: the first node must be the primary")
	}
	if len(nodes) > 64 {
		return nil, errors.New("workload: at most 63 standbys")
	}
	hasPoint := false
	for _, m := range cfg.Mix {
		hasPoint = hasPoint || m.Kind == "point"
	}
	if !hasPoint { // session reads read back by id
		cfg.Mix = append(cfg.Mix, Weighted{"point", 0})
	}
	// Each generator beats on its own heartbeat row (see metrics.Heartbeat).
	s := &Scenario{Config: cfg, nodes: nodes, hbID: 2 + rand.Int64N(1<<30)}
	for i, n := range nodes {
		pc, err := pgxpool.ParseConfig(n.DSN)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		pc.MaxConns = int32(cfg.Clients + 4)
		pc.ConnConfig.RuntimeParams["application_name"] = "pgbenchx"
		if cfg.QueryTimeout > 0 {
			// Set on the session, not per query: no timer on the hot path.
			pc.ConnConfig.RuntimeParams["statement_timeout"] = fmt.Sprint(cfg.QueryTimeout.Milliseconds())
		}
		// A node that went away must fail fast on reconnect, not hang a
		// client for the kernel's TCP timeout.
		pc.ConnConfig.ConnectTimeout = 5 * time.Second
		pool, err := pgxpool.NewWithConfig(ctx, pc)
		if err == nil {
			err = pool.Ping(ctx)
		}
		if err != nil {
			if pool != nil {
				pool.Close()
			}
			s.Close()
			return nil, fmt.Errorf("%s: connect: %w", n.Name, err)
		}
		s.pools = append(s.pools, pool)
		if i == 0 {
			wc := pc.Copy()
			delete(wc.ConnConfig.RuntimeParams, "statement_timeout")
			if s.writer, err = pgxpool.NewWithConfig(ctx, wc); err != nil {
				s.Close()
				return nil, fmt.Errorf("%s: connect: %w", n.Name, err)
			}
		}
	}
	return s, nil
}

// Close closes the pools.
func (s *Scenario) Close() {
	for _, p := range s.pools {
		p.Close()
	}
	if s.writer != nil {
		s.writer.Close()
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
	phase := func(msg string) {
		if hooks.Phase != nil {
			hooks.Phase(msg)
		}
	}
	defer func() {
		s.mu.Lock()
		res.Warnings = append(res.Warnings, s.warnings...)
		s.mu.Unlock()
		if s.hb != nil {
			if n := s.hb.Errors.Load(); n > 0 {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%d heartbeat commits failed on the primary: while the heartbeat stalled, time lag and staleness were unknown (left out, not counted as 0)", n))
			}
		}
		if n := s.bgErrors.Load(); n > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%d background write batches failed on the primary", n))
		}
	}()
	phase(fmt.Sprintf("schema: orders seeded to %d rows", s.Config.Scale))
	if err := Setup(ctx, s.writer, s.pools[1:], s.Config.Scale, s.hbID); err != nil {
		return err
	}
	if err := s.refreshMaxID(ctx); err != nil {
		return err
	}
	defer func() {
		// The row was this run's alone.
		_, _ = s.writer.Exec(context.WithoutCancel(ctx), `DELETE FROM `+metrics.HeartbeatTable+` WHERE id = $1`, s.hbID)
	}()
	if s.hb, err = metrics.NewHeartbeat(ctx, s.writer, s.Config.Heartbeat, s.hbID); err != nil {
		return fmt.Errorf("primary: heartbeat: %w", err)
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	go s.hb.Run(bg)
	s.lag = &metrics.LagSampler{Primary: s.writer, Interval: s.Config.LagInterval, HB: s.hb}
	for i, n := range s.nodes[1:] {
		s.lag.Standbys = append(s.lag.Standbys, metrics.LagTarget{Name: n.Name, Pool: s.pools[i+1]})
	}
	go s.lag.Run(bg)

	if s.Config.WriteRows > 0 {
		phase(fmt.Sprintf("write phase: %d rows in batches of %d on the primary", s.Config.WriteRows, s.Config.WriteBatch))
		wp, err := s.writePhase(ctx, hooks.Write)
		res.Write = wp
		if err != nil {
			return err
		}
		if !wp.CountsEqual {
			res.Warnings = append(res.Warnings, fmt.Sprintf("orders row counts differ between nodes after the write phase: %v", wp.RowCounts))
		}
		if err := s.refreshMaxID(ctx); err != nil {
			return err
		}
	}
	for i, strategy := range s.Config.Strategies {
		if i > 0 {
			s.settle(ctx)
		}
		phase(fmt.Sprintf("read phase: %s, %d clients, %s warmup + %s", strategy, s.Config.Clients, s.Config.Warmup, s.Config.Duration))
		sr, err := s.readPhase(ctx, strategy, hooks.Live)
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

func (s *Scenario) refreshMaxID(ctx context.Context) error {
	var id int64
	if err := s.writer.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM orders`).Scan(&id); err != nil {
		return fmt.Errorf("primary: %w", err)
	}
	s.maxID.Store(id)
	return nil
}

// settle lets standbys catch up between strategies so one strategy's
// backlog is not the next one's lag.
func (s *Scenario) settle(ctx context.Context) {
	limit := s.Config.Settle + s.MaxApplyDelay
	if _, err := waitCaughtUp(ctx, s.writer, s.pools[1:], limit); err != nil && ctx.Err() == nil {
		s.warn("settle: standbys not caught up within %s before the next strategy", limit)
	}
}
