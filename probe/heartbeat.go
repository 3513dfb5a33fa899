package probe

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// hbRing is how many beats are remembered: 11 minutes at 10 ms. A standby
// further behind than that has an unknown time lag.
const hbRing = 1 << 16

// Heartbeat bumps a sequence on the primary every interval and remembers,
// on this process's clock, when each bump was sent and when its commit
// returned. Time lag and stale reads are both judged against it, so neither
// depends on clock skew between hosts nor shows false lag on an idle
// primary (the trap of now() - pg_last_xact_replay_timestamp()).
type Heartbeat struct {
	// ID is this load generator's row: generators running at once against
	// one cluster (to be merged later) must not bump each other's seq.
	ID       int64
	table    string
	pool     atomic.Pointer[pgxpool.Pool] // the primary's; Retarget changes it
	retarget atomic.Bool
	interval time.Duration
	conn     *pgconn.PgConn               // Run's connection, made by NewHeartbeat
	stmt     *pgconn.StatementDescription // its prepared bump
	latest   atomic.Int64                 // newest seq whose commit has returned
	sent     [hbRing]atomic.Int64         // when the bump to seq was sent (unix ns), by seq % hbRing
	done     [hbRing]atomic.Int64         // when its commit returned
	Errors   atomic.Int64
}

// NewHeartbeat continues from the current seq of row id of table, which
// must exist (and be replayed on the standbys) already.
func NewHeartbeat(ctx context.Context, primary *pgxpool.Pool, table string, interval time.Duration, id int64) (*Heartbeat, error) {
	if interval <= 0 {
		return nil, fmt.Errorf("heartbeat: interval %s: want more than 0", interval)
	}
	h := &Heartbeat{ID: id, table: table, interval: interval}
	h.pool.Store(primary)
	var seq int64
	if err := primary.QueryRow(ctx, `SELECT seq FROM `+table+` WHERE id = $1`, id).Scan(&seq); err != nil {
		return nil, err
	}
	// Its connection is made now, not at the first beat: a login's scram
	// work must not land at the start of a measured phase.
	c, err := pgconn.ConnectConfig(ctx, primary.Config().ConnConfig.Config.Copy())
	if err != nil {
		return nil, err
	}
	if h.stmt, err = c.Prepare(ctx, "beat", `UPDATE `+table+` SET seq = $1, at = now() WHERE id = $2`, nil); err != nil {
		_ = c.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	h.conn = c
	// The row was committed before now: now bounds its commit from above
	// for both times, which only widens the first figures' bounds.
	now := time.Now().UnixNano()
	h.sent[seq%hbRing].Store(now)
	h.done[seq%hbRing].Store(now)
	h.latest.Store(seq)
	return h, nil
}

// Interval is the time between beats: the resolution of time lag.
func (h *Heartbeat) Interval() time.Duration { return h.interval }

// Run bumps the sequence until ctx ends, on a connection of its own: a
// bare pgconn with the UPDATE prepared, whose socket deadline bounds each
// bump (no pool, no context, no allocation per beat: at a beat every
// 10 ms the heartbeat must cost the load generator next to nothing). A
// primary that stops answering stalls the heartbeat (and makes staleness
// unknown) instead of hanging it; the connection is made again after a
// failure.
func (h *Heartbeat) Run(ctx context.Context) {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	timeout := max(5*h.interval, time.Second)
	conn, sd := h.conn, h.stmt
	defer func() {
		if conn != nil {
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = conn.Close(cctx)
			cancel()
		}
	}()
	var seqBuf, idBuf []byte
	idBuf = strconv.AppendInt(idBuf, h.ID, 10)
	params := make([][]byte, 2)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := h.latest.Load() + 1
		if h.retarget.Swap(false) && conn != nil {
			// A failover: the beats go to the new primary from now on.
			cctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			_ = conn.Close(cctx)
			cancel()
			conn = nil
		}
		if conn == nil || conn.IsClosed() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			c, err := pgconn.ConnectConfig(cctx, h.pool.Load().Config().ConnConfig.Config.Copy())
			if err == nil {
				sd, err = c.Prepare(cctx, "beat", `UPDATE `+h.table+` SET seq = $1, at = now() WHERE id = $2`, nil)
				if err != nil {
					_ = c.Close(cctx)
				}
			}
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					h.Errors.Add(1)
				}
				continue
			}
			conn = c
		}
		h.sent[next%hbRing].Store(time.Now().UnixNano())
		_ = conn.Conn().SetDeadline(time.Now().Add(timeout))
		seqBuf = strconv.AppendInt(seqBuf[:0], next, 10)
		params[0], params[1] = seqBuf, idBuf
		_, err := conn.ExecStatement(context.Background(), sd, params, nil, nil).Close()
		if err != nil {
			if ctx.Err() == nil {
				h.Errors.Add(1)
			}
			continue
		}
		h.done[next%hbRing].Store(time.Now().UnixNano())
		h.latest.Store(next)
	}
}

// Retarget sends the beats to another primary from the next one on:
// after a failover.
func (h *Heartbeat) Retarget(primary *pgxpool.Pool) {
	h.pool.Store(primary)
	h.retarget.Store(true)
}

// LastCommit is when the newest beat's commit returned (zero before any).
func (h *Heartbeat) LastCommit() time.Time {
	if at := h.done[h.latest.Load()%hbRing].Load(); at != 0 {
		return time.Unix(0, at)
	}
	return time.Time{}
}

// Fresh says the heartbeat still beats: its last commit returned within
// three intervals (50 ms at least). When it stalls (the primary overloaded
// or down), a read showing the last seq may still have missed other
// writes: staleness becomes unknown, never "fresh".
func (h *Heartbeat) Fresh(now time.Time) bool {
	at := h.done[h.latest.Load()%hbRing].Load()
	return at != 0 && now.Sub(time.Unix(0, at)) <= max(3*h.interval, 50*time.Millisecond)
}

// Latest is the newest seq committed so far: a read that starts now and
// sees less is stale.
func (h *Heartbeat) Latest() int64 { return h.latest.Load() }

// Lag bounds the time lag of a standby whose answer showed seq seen: it
// was asked at send, when latest was the newest committed seq, and its
// answer arrived at recv. The standby had not replayed beat seen+1 (if
// that beat had returned before send, the standby is at least send minus
// that return behind) and had replayed beat seen (so it is at most recv
// minus that beat's send behind). The bounds are about one heartbeat
// interval apart. ok is false when the beats are too old to be remembered.
func (h *Heartbeat) Lag(seen, latest int64, send, recv time.Time) (lo, hi time.Duration, ok bool) {
	newest := h.latest.Load()
	if seen > newest {
		// The standby shows a beat whose commit has not returned here yet:
		// it is caught up with the heartbeat.
		newest = seen
	}
	if newest-seen >= hbRing-1 || seen < 0 {
		return 0, 0, false
	}
	sentSeen := h.sent[seen%hbRing].Load()
	if sentSeen == 0 {
		return 0, 0, false
	}
	hi = max(0, recv.Sub(time.Unix(0, sentSeen)))
	if seen < latest {
		if at := h.done[(seen+1)%hbRing].Load(); at != 0 {
			lo = max(0, send.Sub(time.Unix(0, at)))
		}
	}
	return lo, max(lo, hi), true
}
