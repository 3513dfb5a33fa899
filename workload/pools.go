package workload

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/routing"
)

// The connections a run opens: the clients' read connections (prepared),
// the writer, the probes, and the check that every node can take them.

// prepareReads prepares every read on every client's connection to every
// node that takes reads, a few at a time, once the schema exists: no read
// of a phase pays for a Prepare. A read that cannot be prepared (a query
// file's table that does not exist) fails the run here, naming it.
func (s *Scenario) prepareReads(ctx context.Context) error {
	for i := range s.nodes {
		if i == s.primary && !s.readsPrimary() {
			continue
		}
		if err := s.eachConn(ctx, i, func(ctx context.Context, rc *readConn) error { return rc.prepare(ctx) }); err != nil {
			return fmt.Errorf("%s: %s", s.nodes[i].Name, s.redact(err.Error()))
		}
	}
	for v, via := range s.Config.Vias {
		if err := s.eachConn(ctx, len(s.nodes)+v, func(ctx context.Context, rc *readConn) error { return rc.prepare(ctx) }); err != nil {
			return fmt.Errorf("via:%s: %s", via.Name, s.redact(err.Error()))
		}
	}
	return nil
}

// eachConn runs f on every client's connection to node i, a few at a
// time, each with controlTimeout; the first error comes back.
func (s *Scenario) eachConn(ctx context.Context, i int, f func(context.Context, *readConn) error) error {
	const atOnce = 8
	sem := make(chan struct{}, atOnce)
	errs := make(chan error, s.Config.Clients)
	var wg sync.WaitGroup
	for c := range s.Config.Clients {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			actx, cancel := context.WithTimeout(ctx, controlTimeout)
			defer cancel()
			if err := f(actx, s.conns[c][i]); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// fill opens every client's connection to node i, a few at a time,
// before anything is measured: hundreds of clients connecting at once
// when a phase starts would queue behind each other's scram handshakes,
// time out and eject a healthy node, and charge that to it.
func (s *Scenario) fill(ctx context.Context, i int) error {
	err := s.eachConn(ctx, i, func(ctx context.Context, rc *readConn) error {
		_, err := rc.connect(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: opening %d connections for the clients: %s", s.connName(i), s.Config.Clients, s.redact(err.Error()))
	}
	return nil
}

// connName names connection column i: a node, or a via: endpoint.
func (s *Scenario) connName(i int) string {
	if i < len(s.nodes) {
		return s.nodes[i].Name
	}
	return "via:" + s.Config.Vias[i-len(s.nodes)].Name
}

func hasKind(mix []Weighted, kind string) bool {
	for _, m := range mix {
		if m.Kind == kind {
			return true
		}
	}
	return false
}

// The pools' sizes: a read pool holds a connection per client (a client
// has one read in flight at a time), a probe pool two (the lag sampler
// and a wait or count), the writer one per client when clients write
// (session writes) plus the heartbeat, the background writer and the cost
// meter.
const probeConns = 2

func (s *Scenario) writerConns() int {
	n := 4
	if s.sessionWrites() {
		n += s.Config.Clients
	}
	return n
}

func (s *Scenario) sessionWrites() bool {
	return s.Config.SessionWrites > 0 || slices.Contains(s.Config.Strategies, routing.Causal)
}

// readsPrimary says whether any strategy of the run may send reads to the
// primary: as a target, or as lag-aware's or causal's fallback.
func (s *Scenario) readsPrimary() bool {
	if s.Config.ReadPrimary || slices.Contains(s.Config.Strategies, routing.Causal) {
		return true
	}
	return slices.Contains(s.Config.Strategies, routing.LagAware) && s.Config.LagFallback != routing.FallbackError
}

// connBudget is how many connections the run may open on each node.
func (s *Scenario) connBudget() []int {
	out := make([]int, len(s.nodes))
	for i := range s.nodes {
		out[i] = probeConns
		if i != s.primary || s.readsPrimary() {
			out[i] += s.Config.Clients
		}
		if i == s.primary {
			out[i] += s.writerConns()
		}
	}
	return out
}

func (s *Scenario) poolConfig(n Node, conns int, statementTimeout time.Duration) (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(n.DSN)
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid connection string", n.Name)
	}
	pc.MaxConns = int32(max(1, conns))
	rp := pc.ConnConfig.RuntimeParams
	rp["application_name"] = "pgbenchx"
	// Our statements only ever wait on our own tables' locks: a session
	// holding them (a DBA's open transaction) fails a write in seconds
	// instead of hanging the run.
	rp["lock_timeout"] = "10s"
	// Unqualified names in --query-file reads resolve to our schema, never
	// to a user's table of the same name; our own SQL names its schema.
	rp["search_path"] = Schema
	if statementTimeout > 0 {
		// Set on the session, not per query: no round trip on the hot path.
		rp["statement_timeout"] = fmt.Sprint(max(1, statementTimeout.Milliseconds()))
	}
	// A node that went away must fail fast on reconnect, not hang a
	// client for the kernel's TCP timeout.
	if pc.ConnConfig.ConnectTimeout == 0 || pc.ConnConfig.ConnectTimeout > controlTimeout {
		pc.ConnConfig.ConnectTimeout = controlTimeout
	}
	return pc, nil
}

// serverTimeout is the reads' statement_timeout: a little under the
// client's deadline, so that a slow but live server cancels the read
// itself (57014, the connection kept) before the client gives up on it
// and discards the connection, which only a node that stopped answering
// should cost.
func serverTimeout(qt time.Duration) time.Duration {
	if qt <= 0 {
		return 0
	}
	// A quarter of a short timeout, so the server's answer can still
	// arrive on a busy host; 100 ms of a long one.
	return qt - min(qt/4, 100*time.Millisecond)
}

func (s *Scenario) pool(n Node, conns int, statementTimeout time.Duration) (*pgxpool.Pool, error) {
	pc, err := s.poolConfig(n, conns, statementTimeout)
	if err != nil {
		return nil, err
	}
	return pgxpool.NewWithConfig(context.Background(), pc)
}

// writerPool is the writer's pool on the primary n: no statement
// timeout, the run's synchronous_commit.
func (s *Scenario) writerPool(n Node) (*pgxpool.Pool, error) {
	pc, err := s.poolConfig(n, s.writerConns(), 0)
	if err != nil {
		return nil, err
	}
	if s.Config.Commit != "" {
		pc.ConnConfig.RuntimeParams["synchronous_commit"] = s.Config.Commit
	}
	return pgxpool.NewWithConfig(context.Background(), pc)
}

// openProbe opens node n's probe pool and checks it answers.
func (s *Scenario) openProbe(ctx context.Context, n Node) error {
	p, err := s.pool(n, probeConns, 0)
	if err != nil {
		return err
	}
	s.probes = append(s.probes, p)
	pctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	if err := p.Ping(pctx); err != nil {
		return fmt.Errorf("%s: connect: %s", n.Name, s.redact(err.Error()))
	}
	return nil
}

// open makes every client's read connection to node i (connected by
// fill), and the writer on the primary.
func (s *Scenario) open(_ context.Context, i int, n Node) error {
	pc, err := s.poolConfig(n, 1, serverTimeout(s.Config.QueryTimeout))
	if err != nil {
		return err
	}
	if s.conns == nil {
		// A connection per client to each node, then to each via:
		// endpoint (index len(nodes)+v).
		s.conns = make([][]*readConn, s.Config.Clients)
		for c := range s.conns {
			s.conns[c] = make([]*readConn, len(s.nodes)+len(s.Config.Vias))
		}
		s.connGen = make([]atomic.Uint64, len(s.nodes)+len(s.Config.Vias))
	}
	if s.qs == nil {
		s.qs = s.queries()
	}
	for c := range s.conns {
		s.conns[c][i] = newReadConn(pc.ConnConfig.Config.Copy(), s.qs.list, &s.connGen[i], s.Config.Protocol)
		s.conns[c][i].timeout, s.conns[c][i].cuts = s.Config.QueryTimeout, &s.cuts
	}
	if i == len(s.nodes)-1 {
		for v, via := range s.Config.Vias {
			// The same session settings as the nodes' (pgpool and HAProxy
			// pass them on; PgBouncer needs them in its
			// ignore_startup_parameters): the server cancels a slow read
			// itself, keeping the connection, before the client gives up.
			vc, err := s.poolConfig(Node{Name: "via:" + via.Name, DSN: via.DSN}, 1, serverTimeout(s.Config.QueryTimeout))
			if err != nil {
				return err
			}
			for c := range s.conns {
				protocol := s.Config.Protocol
				if s.Config.ViaProtocol != "" {
					protocol = s.Config.ViaProtocol
				}
				rc := newReadConn(vc.ConnConfig.Config.Copy(), s.qs.list, &s.connGen[len(s.nodes)+v], protocol)
				rc.via, rc.timeout, rc.cuts = true, s.Config.QueryTimeout, &s.cuts
				s.conns[c][len(s.nodes)+v] = rc
			}
		}
	}
	if i == s.primary {
		if s.writer, err = s.writerPool(n); err != nil {
			return err
		}
	}
	return nil
}

// preflight checks that node i can take the connections the run will
// open on it: its max_connections minus the reserved ones minus those in
// use (ours, the one asking, included) must cover them.
func (s *Scenario) preflight(ctx context.Context, i, need int) error {
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	var maxConns, reserved, inUse int
	err := s.probes[i].QueryRow(ctx, `SELECT current_setting('max_connections')::int,
		current_setting('superuser_reserved_connections')::int + coalesce(current_setting('reserved_connections', true)::int, 0),
		(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int`).Scan(&maxConns, &reserved, &inUse)
	if err != nil {
		return fmt.Errorf("%s: preflight: %s", s.nodes[i].Name, s.redact(err.Error()))
	}
	// The connection asking is the probe pool's first: it is in use and in need.
	free := maxConns - reserved - inUse + 1
	if need <= free {
		return nil
	}
	per := "per client on each standby"
	if i == s.primary {
		per = "for the primary's reads, session writes and heartbeat"
	}
	return &input.Error{Flag: "clients", Value: fmt.Sprint(s.Config.Clients), Accepted: fmt.Sprintf(
		"%s takes %d more connections (max_connections %d, %d reserved, %d in use) but this run opens up to %d there (one %s, plus probes): use fewer --clients, or raise max_connections (for an env: pgbenchx env up --pg-setting max_connections=%d)",
		s.nodes[i].Name, max(0, free), maxConns, reserved, inUse-1, need, per, roundUp(maxConns+need-free+10, 50))}
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }
