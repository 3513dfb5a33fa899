package metrics

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// HeartbeatTable holds one row whose seq the load generator bumps.
const HeartbeatTable = "pgbenchx_heartbeat"

const hbRing = 1 << 14 // commit times kept: 27 minutes at 100 ms

// Heartbeat bumps a sequence on the primary every interval and remembers,
// on this process's clock, when each bump's commit returned. Time lag and
// stale reads are both judged against it, so neither depends on clock skew
// between hosts nor shows false lag on an idle primary (the trap of
// now() - pg_last_xact_replay_timestamp()).
type Heartbeat struct {
	pool     *pgxpool.Pool
	interval time.Duration
	latest   atomic.Int64         // newest seq whose commit has returned
	times    [hbRing]atomic.Int64 // commit time (unix ns) by seq % hbRing
	Errors   atomic.Int64
}

// NewHeartbeat continues from the table's current seq.
func NewHeartbeat(ctx context.Context, primary *pgxpool.Pool, interval time.Duration) (*Heartbeat, error) {
	h := &Heartbeat{pool: primary, interval: interval}
	var seq int64
	if err := primary.QueryRow(ctx, `SELECT seq FROM `+HeartbeatTable+` WHERE id = 1`).Scan(&seq); err != nil {
		return nil, err
	}
	h.latest.Store(seq)
	h.times[seq%hbRing].Store(time.Now().UnixNano())
	return h, nil
}

// Run bumps the sequence until ctx ends.
func (h *Heartbeat) Run(ctx context.Context) {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := h.latest.Load() + 1
		if _, err := h.pool.Exec(ctx, `UPDATE `+HeartbeatTable+` SET seq = $1, at = now() WHERE id = 1`, next); err != nil {
			if ctx.Err() == nil {
				h.Errors.Add(1)
			}
			continue
		}
		h.times[next%hbRing].Store(time.Now().UnixNano())
		h.latest.Store(next)
	}
}

// Latest is the newest seq committed so far: a read that starts now and
// sees less is stale.
func (h *Heartbeat) Latest() int64 { return h.latest.Load() }

// Lag is the time lag of a node that shows seq: zero when it shows the
// newest, else how long ago the first commit it has not seen returned.
// ok is false when that commit is too old to be remembered.
func (h *Heartbeat) Lag(seen int64, now time.Time) (time.Duration, bool) {
	latest := h.latest.Load()
	if seen >= latest {
		return 0, true
	}
	if latest-seen >= hbRing {
		return 0, false
	}
	at := h.times[(seen+1)%hbRing].Load()
	if at == 0 {
		return 0, false
	}
	return max(0, now.Sub(time.Unix(0, at))), true
}
