package workload

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgbenchx/pgbenchx/script"
)

// readConn is one client's connection to one node for its reads: a bare
// pgconn, no pool in between (a client has one read in flight at a time,
// so there is nothing to share), the reads prepared on it once, and no
// context per read: a read's deadline is the socket's (moved about once
// a millisecond, see setDeadline).
// That is what keeps the client's cost per read near pgbench's: one
// Bind/Execute/Sync out, the rows in, no allocation, no goroutine.
type readConn struct {
	cfg     *pgconn.Config
	queries []*query                      // by kind: prepared when the connection is made
	conn    atomic.Pointer[pgconn.PgConn] // nil until connected, and after the connection broke
	// stmts are the reads prepared on conn, by query kind; reset when the
	// connection is replaced.
	stmts  []*pgconn.StatementDescription
	params [1][]byte
	argBuf []byte
	// bind, execute and sync are a prepared read's messages, reused.
	bind    pgproto3.Bind
	execute pgproto3.Execute
	sync    pgproto3.Sync
	// sockDeadline is the deadline last set on conn's socket (zero: none),
	// valid while sockSet; aborted says the phase's end has since set its
	// own (abort runs on another goroutine), so it must be set again.
	sockDeadline time.Time
	sockSet      bool
	aborted      atomic.Bool
	// cuts counts the reads being cancelled in the background (cut), for
	// the scenario's Close to wait for; nil: not counted.
	cuts *sync.WaitGroup
	// gen is the node's count of broken connections, shared by every
	// client's connection to it; dialGen its value when conn was made.
	// When a node restarts, each client's connection to it is dead, but
	// only the first read on each would find out: without gen, every
	// client would fail one read there after the node came back (and
	// each failure eject it again), where a pool that checks its idle
	// connections (pgxpool's ping after a second idle) would not.
	gen     *atomic.Uint64
	dialGen uint64
	// protocol is how reads are sent: prepared, extended or simple.
	protocol string
	// via: the connection goes to a via: endpoint, and built-in reads
	// ask which node served them.
	via bool
	// timeout is --query-timeout (0: none): a script's \sleep longer than
	// it is the script's error, not a slow node.
	timeout time.Duration
	// scriptStmts are a script's statements prepared on conn, by query
	// kind then step; args is the buffer its parameters are drawn into.
	scriptStmts [][]*pgconn.StatementDescription
	args        [][]byte
}

func newReadConn(cfg *pgconn.Config, queries []*query, gen *atomic.Uint64, protocol string) *readConn {
	if protocol == "" {
		protocol = "prepared"
	}
	cfg.DialFunc = directDial(cfg.DialFunc)
	return &readConn{cfg: cfg, queries: queries, stmts: make([]*pgconn.StatementDescription, len(queries)), argBuf: make([]byte, 0, 24),
		gen: gen, protocol: protocol}
}

// connect opens the connection if there is none; ctx bounds the attempt.
func (rc *readConn) connect(ctx context.Context) (*pgconn.PgConn, error) {
	if c := rc.conn.Load(); c != nil && !c.IsClosed() {
		return c, nil
	}
	gen := rc.gen.Load() // before the dial: a break found meanwhile drops this one too
	c, err := pgconn.ConnectConfig(ctx, rc.cfg)
	if err != nil {
		return nil, err
	}
	clear(rc.stmts)
	rc.scriptStmts = nil
	rc.sockSet = false
	rc.dialGen = gen
	rc.conn.Store(c)
	return c, nil
}

// prepare prepares every read on the connection (connecting if needed),
// so that no read pays a Prepare round trip: the scenario calls it once
// the schema exists, before the read phases.
func (rc *readConn) prepare(ctx context.Context) error {
	for kind, q := range rc.queries {
		// The connection again for each kind: a warm-up read that was cut
		// off (see cut) gave its connection away.
		c, err := rc.connect(ctx)
		if err != nil {
			return err
		}
		if q.script != nil {
			if err := rc.prepareScript(ctx, c, kind); err != nil {
				return fmt.Errorf("prepare %s: %w", q.kind, err)
			}
			// A warm-up run, as for the other reads; a state of its own
			// (client 0) draws its variables. It may fail (a \set that
			// divides by zero): the phase counts that.
			deadline, _ := ctx.Deadline()
			st := q.script.NewState(rand.New(rand.NewPCG(1, uint64(kind))), q.builtins(0))
			_, _ = rc.run(ctx, q, kind, 0, deadline, st)
			continue
		}
		if rc.stmts[kind] == nil && rc.protocol == "prepared" {
			if rc.stmts[kind], err = c.Prepare(ctx, "q"+strconv.Itoa(kind), rc.sqlOf(q), nil); err != nil {
				return fmt.Errorf("prepare %s: %w", q.kind, err)
			}
		}
		// Run it once too: the server's first executions of a statement
		// (plan choice, caches) and the client's first pass are not the
		// measured ones, even without a warmup.
		// Its result does not matter: a read that fails here (a query that
		// always times out) fails in the phase too, where it is counted.
		deadline, _ := ctx.Deadline()
		_, _ = rc.run(ctx, q, kind, 1, deadline, nil)
	}
	return nil
}

// abort cuts short whatever the connection is doing: the phase has ended.
func (rc *readConn) abort() {
	if c := rc.conn.Load(); c != nil {
		_ = c.Conn().SetDeadline(time.Now())
		// After the deadline: a read that sees the flag sets its own
		// deadline after this one.
		rc.aborted.Store(true)
	}
}

// deadlineSlack is how long after its try's deadline a read may still be
// cut off. The socket's deadline is moved only when it no longer covers
// the try, about once per slack per client instead of at every read (each
// move is two runtime timers changed, for the read and the write side).
// Go's network poller wakes at millisecond granularity anyway.
const deadlineSlack = time.Millisecond

// setDeadline makes conn's socket give up at deadline (zero: never), or
// at most deadlineSlack later.
func (rc *readConn) setDeadline(c *pgconn.PgConn, deadline time.Time) error {
	if rc.aborted.Load() {
		rc.aborted.Store(false)
		rc.sockSet = false
	}
	want := deadline
	if !want.IsZero() {
		want = want.Add(deadlineSlack)
	}
	// The socket's deadline serves while it is within [deadline, want]
	// (both zero: none, and none wanted).
	if rc.sockSet && !rc.sockDeadline.Before(deadline) && !rc.sockDeadline.After(want) {
		return nil
	}
	if err := c.Conn().SetDeadline(want); err != nil {
		rc.sockSet = false
		return err
	}
	rc.sockDeadline, rc.sockSet = want, true
	return nil
}

// close drops the connection, waiting at most until ctx ends.
func (rc *readConn) close(ctx context.Context) {
	if c := rc.conn.Swap(nil); c != nil {
		_ = c.Close(ctx)
	}
}

// isTimeout says whether err is a deadline that passed (pgconn wraps
// the net package's error its own way).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// drop closes a connection thought dead without waiting long for it.
func (rc *readConn) drop(c *pgconn.PgConn) {
	rc.conn.CompareAndSwap(c, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_ = c.Close(ctx)
}

// cut abandons a read the server may still be running (its deadline or
// the phase's end came first), as pgconn does with one of its own: in the
// background, it asks the server to cancel it (over a connection of its
// own), ends the session and reads what the server still sends until it
// closes. A backend left running would load the node through the next
// phase, and a socket closed with unread data is reset ("connection reset
// by peer" in the server's log). The goroutine leaves c itself alone (its
// caller still asks it IsClosed): only its socket, as pgconn's own
// asynchronous close does.
func (rc *readConn) cut(c *pgconn.PgConn) {
	rc.conn.CompareAndSwap(c, nil)
	if rc.cuts != nil {
		rc.cuts.Add(1)
	}
	go func() {
		if rc.cuts != nil {
			defer rc.cuts.Done()
		}
		deadline := time.Now().Add(15 * time.Second)
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		_ = c.CancelRequest(ctx)
		sock := c.Conn()
		defer sock.Close()
		if sock.SetDeadline(deadline) != nil {
			return
		}
		if _, err := sock.Write([]byte{'X', 0, 0, 0, 4}); err != nil { // Terminate
			return
		}
		_, _ = io.Copy(io.Discard, sock)
	}()
}

// errNotConnected stands for a read that never reached the node because
// the phase ended while it connected.
var errNotConnected = errors.New("not connected")

// run executes q (query kind kind) with arg when q takes one, by the
// deadline (zero: none). A connection that broke, or whose read passed
// the deadline, is dropped; the next read connects again. ctx bounds
// only a connection attempt.
func (rc *readConn) run(ctx context.Context, q *query, kind int, arg int64, deadline time.Time, st *script.State) (res readResult, err error) {
	res.seq = -1
	c := rc.conn.Load()
	if c != nil && rc.gen.Load() != rc.dialGen {
		// Another client found its connection to this node broken since
		// this one was made: it is most likely dead too.
		rc.drop(c)
		c = nil
	}
	if c == nil || c.IsClosed() {
		// A new connection is part of this try: it gets the try's deadline.
		cctx := ctx
		if !deadline.IsZero() {
			var cancel context.CancelFunc
			cctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		if c, err = rc.connect(cctx); err != nil {
			return res, err
		}
	}
	if err := rc.setDeadline(c, deadline); err != nil {
		return res, err
	}
	if ctx.Err() != nil {
		// The phase ended after the client looked, and its abort may have
		// come before the deadline above replaced it: do not start.
		return res, errNotConnected
	}
	defer func() {
		if err != nil && c.IsClosed() {
			rc.conn.CompareAndSwap(c, nil)
			// A lost connection tells the others, once per break (one
			// made before an earlier break has nothing new to say). A
			// read cut off by its own deadline or the phase's end says
			// nothing about the other connections.
			if ctx.Err() == nil && !errors.Is(err, os.ErrDeadlineExceeded) && !isTimeout(err) {
				rc.gen.CompareAndSwap(rc.dialGen, rc.dialGen+1)
			}
		}
	}()
	if q.script != nil {
		return res, rc.runScript(ctx, c, q, kind, st, deadline)
	}
	var rr *pgconn.ResultReader
	switch rc.protocol {
	case "simple":
		return rc.runSimple(c, q, arg)
	case "extended":
		// Parsed at every read, as through a pooler that cannot keep
		// prepared statements: Parse/Bind/Describe/Execute/Sync.
		var params [][]byte
		if q.arg != nil {
			rc.argBuf = strconv.AppendInt(rc.argBuf[:0], arg, 10)
			rc.params[0] = rc.argBuf
			params = rc.params[:]
		}
		rr = c.ExecParams(context.Background(), rc.sqlOf(q), params, nil, nil, rc.formatsOf(q))
	default:
		sd := rc.stmts[kind]
		if sd == nil {
			if sd, err = c.Prepare(context.Background(), "q"+strconv.Itoa(kind), rc.sqlOf(q), nil); err != nil {
				return res, err
			}
			rc.stmts[kind] = sd
		}
		return rc.execPrepared(c, q, sd, arg)
	}
	first := true
	for rr.NextRow() {
		if first && q.builtin {
			res = builtinResult(q.kind, rr.Values(), rc.via)
		}
		first = false
	}
	_, err = rr.Close()
	return res, err
}

// execPrepared runs a prepared read: Bind, Execute and Sync written at
// once, the answer read to ReadyForQuery. It goes around pgconn's
// ExecStatement, which costs per read a runtime timer reset and stopped
// (its guard against a write blocking while the server also writes:
// these messages are a few dozen bytes) and a string for the command
// tag; pgconn still reads the messages, so its state (transaction
// status, notices, a FATAL closing the connection) holds.
func (rc *readConn) execPrepared(c *pgconn.PgConn, q *query, sd *pgconn.StatementDescription, arg int64) (res readResult, err error) {
	res.seq = -1
	rc.bind.PreparedStatement = sd.Name
	rc.bind.Parameters = nil
	if len(sd.ParamOIDs) > 0 {
		// Text format: the server reads the id into whatever type the
		// query compares it with.
		rc.argBuf = strconv.AppendInt(rc.argBuf[:0], arg, 10)
		rc.params[0] = rc.argBuf
		rc.bind.Parameters = rc.params[:]
	}
	rc.bind.ResultFormatCodes = rc.formatsOf(q)
	fe := c.Frontend()
	fe.SendBind(&rc.bind)
	fe.SendExecute(&rc.execute)
	fe.SendSync(&rc.sync)
	if ferr := fe.Flush(); ferr != nil {
		rc.drop(c) // pgconn did not see the write fail
		return res, ferr
	}
	first := true
	for {
		msg, rerr := c.ReceiveMessage(context.Background())
		if rerr != nil {
			// Mid-answer: the connection's place in the protocol is lost.
			var pe *pgconn.PgError
			if errors.As(rerr, &pe) {
				rerr = pe // a FATAL, as ExecStatement reports it
			}
			if isTimeout(rerr) {
				rc.cut(c)
			} else {
				rc.drop(c)
			}
			if err == nil {
				err = rerr // else the server's error comes first
			}
			return res, err
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			if first && q.builtin {
				res = builtinResult(q.kind, m.Values, rc.via)
			}
			first = false
		case *pgproto3.ErrorResponse:
			// The server goes on to ReadyForQuery: the connection stays.
			if err == nil {
				err = pgconn.ErrorResponseToPgError(m)
			}
		case *pgproto3.ReadyForQuery:
			return res, err
		}
	}
}

// sqlOf and formatsOf are q as this connection sends it.
func (rc *readConn) sqlOf(q *query) string {
	if rc.via && q.viaSQL != "" {
		return q.viaSQL
	}
	return q.sql
}

func (rc *readConn) formatsOf(q *query) []int16 {
	if rc.via && q.viaSQL != "" {
		return q.viaFormats
	}
	return q.formats
}

// runSimple sends q as one query string, its $1 replaced by the value
// (simple protocol: results come as text).
func (rc *readConn) runSimple(c *pgconn.PgConn, q *query, arg int64) (res readResult, err error) {
	res.seq = -1
	sql := rc.sqlOf(q)
	if q.arg != nil {
		sql = strings.ReplaceAll(sql, "$1", strconv.FormatInt(arg, 10))
	}
	mrr := c.Exec(context.Background(), sql)
	first := true
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		for rr.NextRow() {
			if first && q.builtin {
				res = builtinResultText(q.kind, rr.Values(), rc.via)
			}
			first = false
		}
		if _, err := rr.Close(); err != nil {
			_ = mrr.Close()
			return res, err
		}
	}
	return res, mrr.Close()
}

// builtinResultText is builtinResult for text results (simple protocol).
func builtinResultText(kind string, v [][]byte, via bool) readResult {
	res := readResult{seq: -1}
	if len(v) < 2 {
		return res
	}
	seq, err1 := strconv.ParseInt(string(v[0]), 10, 64)
	replay, err2 := strconv.ParseUint(string(v[1]), 10, 64)
	if err1 != nil || err2 != nil {
		return res
	}
	res.seq, res.replay = seq, replay
	found := 2
	if via && len(v) > 3 {
		port, _ := strconv.ParseInt(string(v[2]), 10, 32)
		res.port, res.cluster, found = int32(port), string(v[3]), 4
	}
	if kind == "point" && len(v) > found {
		res.found = string(v[found]) == "t"
	}
	return res
}

// builtinResult reads what a built-in read reports ahead of its rows: the
// heartbeat seq and the replay position as int8 (binary), through a via:
// endpoint the serving node's port (int4, binary) and cluster_name
// (text), and for a point read whether the row was found (bool, binary).
func builtinResult(kind string, v [][]byte, via bool) readResult {
	res := readResult{seq: -1}
	if len(v) < 2 || len(v[0]) != 8 || len(v[1]) != 8 {
		return res
	}
	res.seq = int64(binary.BigEndian.Uint64(v[0]))
	res.replay = binary.BigEndian.Uint64(v[1])
	found := 2
	if via && len(v) > 3 {
		// The port is NULL when the proxy reached the node over a Unix
		// socket: cluster_name then names it.
		if len(v[2]) == 4 {
			res.port = int32(binary.BigEndian.Uint32(v[2]))
		}
		res.cluster, found = string(v[3]), 4
	}
	if kind == "point" && len(v) > found && len(v[found]) == 1 {
		res.found = v[found][0] == 1
	}
	return res
}
