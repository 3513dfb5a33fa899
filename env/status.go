package env

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// NodeStatus is one node's replication state. Pointers are nil when the
// figure is unknown, which is never the same as zero: pgpool once read a
// NULL replay_lag as 0 and kept routing to a dead standby.
type NodeStatus struct {
	Node       string `json:"node"`
	Role       Role   `json:"role"`
	Port       int    `json:"port"`
	Upstream   string `json:"upstream,omitempty"`
	Error      string `json:"error,omitempty"`
	InRecovery *bool  `json:"in_recovery"`
	// State is the standby's walsender state on its upstream
	// (streaming, catchup, ...), "absent" when the upstream lists none.
	State     string `json:"state,omitempty"`
	WALLSN    string `json:"wal_lsn,omitempty"` // current (primary) or replayed (standby) LSN
	SentLSN   string `json:"sent_lsn,omitempty"`
	ReplayLSN string `json:"replay_lsn,omitempty"`
	// LagBytes is the primary's current LSN minus this standby's
	// pg_last_wal_replay_lsn(), the primary sampled first.
	LagBytes *int64 `json:"lag_bytes,omitempty"`
	// ReplayLagMS is pg_stat_replication.replay_lag; NULL when idle.
	ReplayLagMS       *float64 `json:"replay_lag_ms,omitempty"`
	SlotActive        *bool    `json:"slot_active,omitempty"`
	SlotRetainedBytes *int64   `json:"slot_retained_bytes,omitempty"`
}

type walSender struct {
	state, sent, replay string
	replayLagMS         *float64
}

type slotInfo struct {
	active   bool
	retained *int64
}

// connectAll opens a connection to every node it can reach; errors are
// per node, so one dead standby does not hide the others.
func connectAll(ctx context.Context, c *Cluster) (map[string]*pgx.Conn, map[string]error) {
	conns, errs := map[string]*pgx.Conn{}, map[string]error{}
	for _, n := range c.Nodes() {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(cctx, n.DSN())
		cancel()
		if err != nil {
			errs[n.Name] = fmt.Errorf("%s: %w", n.Name, err)
			continue
		}
		conns[n.Name] = conn
	}
	return conns, errs
}

func closeAll(ctx context.Context, conns map[string]*pgx.Conn) {
	for _, c := range conns {
		c.Close(context.WithoutCancel(ctx))
	}
}

// Status reads every node's replication state.
func Status(ctx context.Context, c *Cluster) []NodeStatus {
	conns, errs := connectAll(ctx, c)
	defer closeAll(ctx, conns)
	return status(ctx, c, conns, errs)
}

func status(ctx context.Context, c *Cluster, conns map[string]*pgx.Conn, errs map[string]error) []NodeStatus {
	senders := map[string]map[string]walSender{} // upstream -> standby -> walsender
	slots := map[string]map[string]slotInfo{}    // upstream -> slot -> info
	for _, n := range c.Nodes() {
		if conn := conns[n.Name]; conn != nil && feeds(c, n.Name) {
			senders[n.Name], slots[n.Name] = upstreamView(ctx, conn)
		}
	}
	var primaryLSN string
	out := make([]NodeStatus, 0, len(c.Nodes()))
	for _, n := range c.Nodes() {
		st := NodeStatus{Node: n.Name, Role: n.Role, Port: n.Port, Upstream: n.Upstream}
		conn := conns[n.Name]
		if conn == nil {
			st.Error = errs[n.Name].Error()
		} else if err := nodeView(ctx, conn, &st, primaryLSN); err != nil {
			st.Error = fmt.Sprintf("%s: %v", n.Name, err)
		}
		if n.Role == RolePrimary {
			primaryLSN = st.WALLSN
		} else {
			st.State = "unknown"
			if s, ok := senders[n.Upstream]; ok {
				st.State = "absent"
				if ws, ok := s[n.Name]; ok {
					st.State, st.SentLSN, st.ReplayLSN, st.ReplayLagMS = ws.state, ws.sent, ws.replay, ws.replayLagMS
				}
			}
			if si, ok := slots[n.Upstream][n.Slot]; ok {
				st.SlotActive, st.SlotRetainedBytes = &si.active, si.retained
			}
		}
		out = append(out, st)
	}
	return out
}

// nodeView reads a node's own view: recovery state, LSN, and for a standby
// its lag against the primary's LSN sampled just before. The primary's LSN
// is the insert position, not pg_current_wal_lsn() (the write position):
// with synchronous_commit off a commit can sit in WAL buffers, unwritten,
// and a standby would look caught up with WAL it has not even been sent.
func nodeView(ctx context.Context, conn *pgx.Conn, st *NodeStatus, primaryLSN string) error {
	var inRec bool
	var lsn *string
	err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery(),
		(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END)::text`).Scan(&inRec, &lsn)
	if err != nil {
		return err
	}
	st.InRecovery = &inRec
	if lsn != nil {
		st.WALLSN = *lsn
	}
	if st.Role == RoleStandby && primaryLSN != "" && lsn != nil {
		var lag int64
		if err := conn.QueryRow(ctx, `SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::bigint`, primaryLSN, *lsn).Scan(&lag); err != nil {
			return err
		}
		st.LagBytes = &lag
	}
	return nil
}

// upstreamView reads pg_stat_replication and the slots of a node that
// feeds standbys. Errors leave the maps empty: the caller shows "unknown".
func upstreamView(ctx context.Context, conn *pgx.Conn) (map[string]walSender, map[string]slotInfo) {
	senders, slots := map[string]walSender{}, map[string]slotInfo{}
	rows, err := conn.Query(ctx, `SELECT application_name, state, coalesce(sent_lsn::text, ''), coalesce(replay_lsn::text, ''),
		extract(epoch FROM replay_lag) * 1000 FROM pg_stat_replication`)
	if err == nil {
		for rows.Next() {
			var name string
			var ws walSender
			if rows.Scan(&name, &ws.state, &ws.sent, &ws.replay, &ws.replayLagMS) == nil {
				senders[name] = ws
			}
		}
		rows.Close()
	}
	rows, err = conn.Query(ctx, `SELECT slot_name, active, pg_wal_lsn_diff(
		CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END, restart_lsn)::bigint
		FROM pg_replication_slots WHERE slot_type = 'physical'`)
	if err == nil {
		for rows.Next() {
			var name string
			var si slotInfo
			if rows.Scan(&name, &si.active, &si.retained) == nil {
				slots[name] = si
			}
		}
		rows.Close()
	}
	return senders, slots
}
