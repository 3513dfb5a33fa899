package probe

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat: 100
// on every Linux architecture pgbenchx builds for.
const clockTicks = 100

// CostMeter measures what each standby costs the primary over a phase: the
// WAL its walsender sent (sent_lsn deltas) and, when the primary runs on
// this host, the walsender process's CPU. The lab guide's "about 2% CPU per
// standby" is a claim; this is the measurement.
type CostMeter struct {
	primary *pgxpool.Pool
	local   bool
	start   time.Time
	base    map[string]walsender
}

type walsender struct {
	pid   int
	sent  int64
	ticks int64 // -1 when the process cannot be seen
}

// StartCost takes the first reading. local says the primary's processes
// are visible in this host's /proc.
func StartCost(ctx context.Context, primary *pgxpool.Pool, local bool) *CostMeter {
	m := &CostMeter{primary: primary, local: local, start: time.Now()}
	m.base, _ = m.read(ctx)
	return m
}

func (m *CostMeter) read(ctx context.Context) (map[string]walsender, error) {
	rows, err := m.primary.Query(ctx, `SELECT application_name, pid, pg_wal_lsn_diff(sent_lsn, '0/0')::bigint
		FROM pg_stat_replication WHERE sent_lsn IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]walsender{}
	for rows.Next() {
		var name string
		var w walsender
		if err := rows.Scan(&name, &w.pid, &w.sent); err != nil {
			return nil, err
		}
		w.ticks = -1
		if m.local {
			w.ticks = procTicks(w.pid)
		}
		out[name] = w
	}
	return out, rows.Err()
}

// Stop returns each standby's cost since StartCost. A walsender that
// restarted in between (another pid) has no CPU figure.
func (m *CostMeter) Stop(ctx context.Context) []metrics.StandbyCost {
	now, err := m.read(ctx)
	secs := time.Since(m.start).Seconds()
	if err != nil || secs <= 0 {
		return nil
	}
	var out []metrics.StandbyCost
	for _, name := range slices.Sorted(maps.Keys(now)) {
		w := now[name]
		b, ok := m.base[name]
		if !ok {
			continue
		}
		c := metrics.StandbyCost{Node: name, WALBytesPerSec: float64(w.sent-b.sent) / secs, WalsenderCores: -1}
		if b.pid == w.pid && b.ticks >= 0 && w.ticks >= 0 {
			c.WalsenderCores = float64(w.ticks-b.ticks) / clockTicks / secs
		}
		out = append(out, c)
	}
	return out
}

// procTicks is a process's utime+stime in clock ticks, -1 if unreadable.
func procTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// Fields after the command name, which may hold spaces, in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return u + s
}
