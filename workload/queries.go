package workload

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgbenchx/pgbenchx/routing"
	"github.com/pgbenchx/pgbenchx/script"
)

// Every built-in read returns, first, the heartbeat seq its snapshot saw:
// the same statement, so the same snapshot as the rows it reads. That is
// how a read is judged stale. Second comes the node's replay position (0 on
// the primary), which tells causal routing how far a standby has got
// without waiting for the next lag sample.
const readHead = `SELECT h.seq, coalesce(pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0'), 0)::bigint, `

// identityHead names the node that served a read through a proxy: the
// port it listens on and its cluster_name (an env names each node so).
const identityHead = `inet_server_port(), current_setting('cluster_name'), `

var builtinSQL = map[string]string{
	"point": readHead + `o.id IS NOT NULL FROM ` + HeartbeatTable + ` h
		LEFT JOIN ` + OrdersTable + ` o ON o.id = $1 WHERE h.id = $HB`,
	"range": readHead + `o.id, o.amount::float8 FROM ` + HeartbeatTable + ` h
		LEFT JOIN LATERAL (SELECT id, amount FROM ` + OrdersTable + ` WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 20) o ON true
		WHERE h.id = $HB`,
	"report": readHead + `r.n, r.total FROM ` + HeartbeatTable + ` h,
		LATERAL (SELECT count(*) AS n, coalesce(sum(amount), 0)::float8 AS total FROM ` + OrdersTable + `
		         WHERE id > (SELECT max(id) FROM ` + OrdersTable + `) - 1000) r
		WHERE h.id = $HB`,
}

// query is one read of the mix, prepared once on each client's
// connection (readConn), so the hot path sends only Bind/Execute/Sync.
type query struct {
	kind    string
	sql     string
	builtin bool
	// script, for a pgbench script (-f), is run whole instead of sql;
	// scale is its :scale.
	script *script.Script
	scale  int64
	seed   int64 // :default_seed
	// arg draws the read's $1, nil when it takes none: an int64, never
	// boxed in an interface on the hot path.
	arg func(r *rand.Rand) int64
	// formats are the result columns' formats: binary for what a built-in
	// read reports ahead of its rows (parsed by builtinResult), text for
	// the rest, which is read and dropped.
	formats []int16
	// viaSQL and viaFormats are the read as it goes through a via:
	// endpoint: a built-in read also returns the serving node's port and
	// cluster_name (identityHead) after its heartbeat and replay columns,
	// so the read is counted on the node that served it.
	viaSQL     string
	viaFormats []int16
}

// readResult is what a built-in read reports besides its rows.
type readResult struct {
	seq    int64  // heartbeat seq seen, -1 if the query does not report it
	replay uint64 // the node's replay LSN during the read, 0 if unknown
	found  bool   // point read: the row exists
	// port and cluster name the node that served a read through a via:
	// endpoint (0 and "" when unknown).
	port    int32
	cluster string
}

// querySet is the mix, ready to draw from.
type querySet struct {
	list      []*query
	cum       []int
	total     int
	point     *query
	pointKind int
}

func (qs *querySet) pick(r *rand.Rand) (*query, int) {
	if len(qs.list) == 1 {
		return qs.list[0], 0
	}
	x := r.IntN(qs.total)
	for i, c := range qs.cum {
		if x < c {
			return qs.list[i], i
		}
	}
	return qs.list[len(qs.list)-1], len(qs.list) - 1
}

// queries builds the query set in the order of cfg.kinds().
func (s *Scenario) queries() *querySet {
	qs := &querySet{pointKind: -1}
	add := func(q *query, w int) {
		qs.total += w
		qs.list = append(qs.list, q)
		qs.cum = append(qs.cum, qs.total)
	}
	for _, m := range s.Config.Mix {
		// The heartbeat row is fixed for the run: a literal, not a second
		// bind parameter on every read.
		sql := strings.ReplaceAll(builtinSQL[m.Kind], "$HB", strconv.FormatInt(s.hbID, 10))
		q := &query{kind: m.Kind, sql: sql, builtin: true, formats: []int16{1, 1, 0, 0}}
		switch m.Kind {
		case "point":
			q.arg = func(r *rand.Rand) int64 { return 1 + r.Int64N(max(1, s.maxID.Load())) }
			q.formats = []int16{1, 1, 1}
			qs.point, qs.pointKind = q, len(qs.list)
		case "range":
			q.arg = func(r *rand.Rand) int64 { return int64(1 + r.IntN(customers(s.Config.Scale))) }
		}
		q.viaSQL = strings.Replace(sql, readHead, readHead+identityHead, 1)
		q.viaFormats = append(append(slices.Clone(q.formats[:2]), 1, 0), q.formats[2:]...)
		add(q, m.Weight)
	}
	for _, c := range s.Config.Custom {
		q := &query{kind: c.Name, sql: c.SQL}
		if usesParam(c.SQL) {
			q.arg = func(r *rand.Rand) int64 { return 1 + r.Int64N(max(1, s.maxID.Load())) }
		}
		add(q, c.Weight)
	}
	// pgbench's hash() and permute() read :default_seed: one per run,
	// shared by every client.
	seed := rand.Int64()
	for _, sf := range s.Config.Scripts {
		add(&query{kind: sf.Script.Name, script: sf.Script, scale: int64(s.Config.Scale), seed: seed}, sf.Weight)
	}
	return qs
}

// builtins are a script's predefined variables for client id, as pgbench
// defines them: scale (here the orders rows, --scale), client_id,
// random_seed and default_seed (hash and permute's).
func (q *query) builtins(id int) map[string]int64 {
	return map[string]int64{"scale": q.scale, "client_id": int64(id), "random_seed": q.seed, "default_seed": q.seed}
}

func usesParam(sql string) bool {
	for i := 0; i+1 < len(sql); i++ {
		if sql[i] == '$' && sql[i+1] == '1' {
			return true
		}
	}
	return false
}

// Labels of failures that carry no SQLSTATE.
const (
	LabelClientTimeout     = "client_timeout"     // no answer within --query-timeout: the client gave up and dropped the connection
	LabelConnectionRefused = "connection_refused" // nothing listens on the node's port
	LabelConnectTimeout    = "connect_timeout"    // a new connection was not set up in time (connect and login)
	LabelConnectError      = "connect_error"      // a new connection failed otherwise
	LabelConnectionLost    = "connection_lost"    // the connection broke mid-read
	LabelNetworkTimeout    = "network_timeout"    // a network deadline other than ours
	LabelConnectionError   = "connection_error"   // any other failure to reach the node
	// LabelScriptError is a pgbench script that failed in a
	// meta-command (\set, \sleep): the script's fault, not the node's.
	LabelScriptError = "script_error"
	// LabelRecoveryConflict is a read a standby cancelled because its
	// replay needed what the read held: SQLSTATE 40001 (or 40P01) with
	// "conflict with recovery" in the message.
	LabelRecoveryConflict = "recovery_conflict"
)

// recoveryConflict tells a hot standby conflict from other errors of the
// same SQLSTATE: the server says so only in the message and its detail.
func recoveryConflict(e *pgconn.PgError) bool {
	if e.Code != "40001" && e.Code != "40P01" {
		return false
	}
	return strings.Contains(e.Message, "conflict with recovery") || strings.Contains(e.Detail, "recovery")
}

// classify maps a failed attempt's error to routing's outcome and the
// label it is counted under: "SQLSTATE name" when the server answered
// with an error, else what the client saw. attemptTimedOut says the
// attempt's own deadline (--query-timeout) passed.
func classify(err error, attemptTimedOut bool) (routing.Outcome, string) {
	var se scriptError
	if errors.As(err, &se) {
		// The script, not the node: \set on an undefined variable, a
		// division by zero. The node is fine.
		return routing.Failed, LabelScriptError
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		label := sqlstateLabel(pgErr.Code)
		if recoveryConflict(pgErr) {
			// Counted apart from other 40001s: it is the standby's
			// replay cancelling the read (hot_standby_feedback, or
			// max_standby_streaming_delay, is the knob).
			label = LabelRecoveryConflict
		}
		switch class := pgErr.Code[:min(2, len(pgErr.Code))]; {
		case class == "08", class == "28", class == "3D", class == "53",
			pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03":
			// The node cannot take reads now (shutting down, too many
			// clients, cannot log in): eject it.
			return routing.ConnError, label
		}
		// A canceled statement (57014), a recovery conflict (40001), a bad
		// query: the node itself is fine.
		return routing.Failed, label
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		// A new connection failed: the node cannot take one now.
		var netErr net.Error
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return routing.ConnError, LabelConnectionRefused
		case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
			return routing.ConnError, LabelConnectTimeout
		}
		return routing.ConnError, LabelConnectError
	}
	if attemptTimedOut || errors.Is(err, context.DeadlineExceeded) {
		return routing.ConnError, LabelClientTimeout
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return routing.ConnError, LabelConnectionRefused
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return routing.ConnError, LabelConnectionLost
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return routing.ConnError, LabelNetworkTimeout
	}
	// Anything else without a SQLSTATE is the connection failing.
	return routing.ConnError, LabelConnectionError
}

// sampleMessage is an error's text as a report may show it: passwords
// out, one line, bounded.
func (s *Scenario) sampleMessage(err error) string {
	msg := strings.Join(strings.Fields(s.redact(err.Error())), " ")
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return msg
}
