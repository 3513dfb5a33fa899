package env

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
)

// upstreamTimeline is the timeline a server writes (a primary) or
// receives (a cascading standby).
const upstreamTimeline = `SELECT CASE WHEN pg_is_in_recovery()
	THEN (SELECT received_tli FROM pg_stat_wal_receiver)
	ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END`

// sameTimeline says whether the standby receives its upstream's
// current timeline.
func sameTimeline(ctx context.Context, c *Cluster, n *Node, up *pgx.Conn) (bool, error) {
	var want *int32
	if err := up.QueryRow(ctx, upstreamTimeline).Scan(&want); err != nil {
		return false, err
	}
	if want == nil {
		// A cascading upstream that receives nothing itself (its own
		// upstream is down) has no timeline to compare: streaming is all
		// there is to know.
		return true, nil
	}
	sc, err := pgx.Connect(ctx, socketDSN(c, n))
	if err != nil {
		return false, nil // not ready yet: asked again at the next poll
	}
	defer sc.Close(context.WithoutCancel(ctx))
	var got *int32
	if err := sc.QueryRow(ctx, `SELECT received_tli FROM pg_stat_wal_receiver`).Scan(&got); err != nil {
		return false, nil
	}
	return got != nil && *want == *got, nil
}

// forkLine finds a log line saying the standby cannot follow its
// upstream's timeline: it replayed WAL the upstream never had.
func forkLine(log string) string {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "forked off current database system timeline") ||
			strings.Contains(line, "is not in this server's history") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
