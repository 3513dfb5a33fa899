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
	// ID is this load generator's row: generators running at once against
	// one cluster (to be merged later) must not bump each other's seq.
	ID       int64
	pool     *pgxpool.Pool
	interval time.Duration
	latest   atomic.Int64         // newest seq whose commit has returned
	times    [hbRing]atomic.Int64 // commit time (unix ns) by seq % hbRing
	Errors   atomic.Int64
}

// NewHeartbeat continues from the current seq of row id, which must exist
// (and be replayed on the standbys) already.
func NewHeartbeat(ctx context.Context, primary *pgxpool.Pool, interval time.Duration, id int64) (*Heartbeat, error) {
	h := &Heartbeat{ID: id, pool: primary, interval: interval}
	var seq int64
	if err := primary.QueryRow(ctx, `SELECT seq FROM `+HeartbeatTable+` WHERE id = $1`, id).Scan(&seq); err != nil {
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
		if _, err := h.pool.Exec(ctx, `UPDATE `+HeartbeatTable+` SET seq = $1, at = now() WHERE id = $2`, next, h.ID); err != nil {
			if ctx.Err() == nil {
				h.Errors.Add(1)
			}
			continue
		}
		h.times[next%hbRing].Store(time.Now().UnixNano())
		h.latest.Store(next)
	}
}

// Fresh says the heartbeat still beats: its last commit returned within
// three intervals. When it stalls (the primary overloaded or down), a
// standby showing the last seq is not "caught up", and a read cannot be
// judged stale or fresh: both become unknown, never zero.
func (h *Heartbeat) Fresh(now time.Time) bool {
	at := h.times[h.latest.Load()%hbRing].Load()
	return at != 0 && now.Sub(time.Unix(0, at)) <= 3*h.interval
}

// Latest is the newest seq committed so far: a read that starts now and
// sees less is stale.
func (h *Heartbeat) Latest() int64 { return h.latest.Load() }

// Lag is the time lag of a node that shows seq: zero when it shows the
// newest, else how long ago the first commit it has not seen returned.
// ok is false when that commit is too old to be remembered.
func (h *Heartbeat) Lag(seen int64, now time.Time) (time.Duration, bool) {
	latest := h.latest.Load()
	if !h.Fresh(now) {
		return 0, false
	}
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
