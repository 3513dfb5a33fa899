package env

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbenchx/pgbenchx/input"
)

// ErrForked is wrapped by Repoint when a standby replayed WAL its new
// upstream never had (it was ahead of the promoted node when the old
// primary died): it cannot follow that timeline as it is, and must be
// rewound (Rewind) or rebuilt (Rebuild).
var ErrForked = errors.New("the standby replayed past its new upstream's timeline fork")

// rejoinWait bounds a rewind or a rebuild, their copies included.
const rejoinWait = 5 * time.Minute

// Rewind makes a standby that cannot follow a new upstream (ErrForked)
// follow it: a clean stop, pg_rewind from the upstream (which every env
// allows: wal_log_hints is on), its own settings back, a slot on the
// upstream, a start and a wait until it streams.
func (lc *localControl) Rewind(ctx context.Context, standby, upstream string) error {
	return lc.rejoin(ctx, standby, upstream, "pg_rewind", func(ctx context.Context, sb, up *Node) error {
		args := []string{"--target-pgdata=" + sb.DataDir, "--source-server=" + socketDSN(lc.c, up)}
		if lc.c.Fast {
			args = append(args, "--no-sync")
		}
		// pg_rewind reads the source's timeline from its control file,
		// which a promoted node updates at its next checkpoint only.
		if err := lc.checkpoint(ctx, up); err != nil {
			return err
		}
		out, err := lc.u.runInput(ctx, lc.c.BaseDir, nil, "", filepath.Join(lc.c.PgBin, "pg_rewind"), args...)
		if err == nil && strings.Contains(out, "no rewind required") {
			return errors.New("pg_rewind found nothing to rewind: " + lastLines(out, 2))
		}
		return err
	})
}

// Rebuild replaces a standby's data folder with a pg_basebackup of the
// upstream: what is left when a rewind is not possible. The old folder is
// removed once the new one streams.
func (lc *localControl) Rebuild(ctx context.Context, standby, upstream string) error {
	return lc.rejoin(ctx, standby, upstream, "pg_basebackup", func(ctx context.Context, sb, up *Node) error {
		old := sb.DataDir + ".old"
		_ = os.RemoveAll(old)
		if err := os.Rename(sb.DataDir, old); err != nil {
			return err
		}
		if err := lc.u.mkdir(sb.DataDir); err != nil {
			return errors.Join(err, os.Rename(old, sb.DataDir))
		}
		// A replication connection: the replication role over TCP, as the
		// standby itself streams (the admin role is not let in for it).
		args := []string{"-D", sb.DataDir, "-d", standbyConninfo(lc.c, sb, up.Port), "-X", "stream", "-S", sb.Slot, "-c", "fast"}
		if lc.c.Fast {
			args = append(args, "--no-sync")
		}
		if err := lc.u.run(ctx, lc.c.BaseDir, nil, filepath.Join(lc.c.PgBin, "pg_basebackup"), args...); err != nil {
			// The old folder back: the standby is no worse than before.
			_ = os.RemoveAll(sb.DataDir)
			return errors.Join(err, os.Rename(old, sb.DataDir))
		}
		return os.RemoveAll(old)
	})
}

// rejoin stops the standby, lets copy make its data folder follow the
// upstream, restores what is the standby's own (postgresql.auto.conf:
// its upstream, slot, apply delay; standby.signal), and starts it.
func (lc *localControl) rejoin(ctx context.Context, standby, upstream, tool string, copyFrom func(ctx context.Context, sb, up *Node) error) error {
	sb, err := lc.node(standby)
	if err != nil {
		return err
	}
	if sb.Role != RoleStandby {
		return input.Bad("node", standby, "%s is not a standby (it is %s)", standby, sb.Role)
	}
	up, err := lc.node(upstream)
	if err != nil {
		return err
	}
	if err := lc.checkUpstream(sb.Name, up); err != nil {
		return err
	}
	if _, err := running(&up); err != nil {
		return fmt.Errorf("cannot rejoin %s: %w", standby, err)
	}
	ctx, cancel := context.WithTimeout(ctx, rejoinWait)
	defer cancel()
	if pm, ok := postmasterOf(&sb); ok && pm.stopped() {
		return fmt.Errorf("%s is frozen (thaw it first)", standby)
	}
	if err := stopServer(&sb); err != nil {
		return err
	}
	if sb.Slot == "" {
		sb.Slot = SlotName(sb.Name)
	}
	if err := lc.ensureSlot(ctx, up, sb.Slot); err != nil {
		return fmt.Errorf("%s: slot %s on %s: %w", standby, sb.Slot, upstream, err)
	}
	auto := filepath.Join(sb.DataDir, "postgresql.auto.conf")
	own, err := os.ReadFile(auto)
	if err != nil {
		return fmt.Errorf("%s: %w", standby, err)
	}
	if err := copyFrom(ctx, &sb, &up); err != nil {
		return fmt.Errorf("%s: %s from %s: %w", standby, tool, upstream, err)
	}
	// The copy brought the upstream's own settings: put the standby's back.
	if err := os.WriteFile(auto, own, 0o600); err != nil {
		return err
	}
	sig := filepath.Join(sb.DataDir, "standby.signal")
	if err := os.WriteFile(sig, nil, 0o600); err != nil {
		return err
	}
	for _, p := range []string{auto, sig} {
		if err := lc.u.chown(p); err != nil {
			return err
		}
	}
	return lc.startFollowing(ctx, sb, up)
}

// startFollowing points the stopped standby sb at up (through its link's
// proxy when it has one), records it, starts it, waits until it streams
// from up and drops its slot on its old upstream: how Repoint and Rewind
// end.
func (lc *localControl) startFollowing(ctx context.Context, sb, up Node) error {
	oldUpstream := sb.Upstream
	port, err := upstreamPort(lc.c, &sb, &up)
	if err != nil {
		return err
	}
	if err := writeUpstream(lc.c, &sb, port); err != nil {
		return fmt.Errorf("%s: write primary_conninfo: %w", sb.Name, err)
	}
	slot := sb.Slot
	if err := lc.update(sb.Name, func(m *Node) { m.Upstream, m.Slot, m.PID = up.Name, slot, 0 }); err != nil {
		return err
	}
	sb.Upstream = up.Name
	logStart := fileSize(sb.LogFile)
	if err := lc.startNode(ctx, &sb); err != nil {
		return err
	}
	if err := lc.waitStreaming(ctx, sb, logStart); err != nil {
		return err
	}
	if oldUpstream != up.Name {
		lc.dropOldSlot(ctx, oldUpstream, sb.Slot)
	}
	return nil
}

func (lc *localControl) checkpoint(ctx context.Context, n *Node) error {
	conn, err := pgx.Connect(ctx, socketDSN(lc.c, n))
	if err != nil {
		return fmt.Errorf("%s: connect: %w", n.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `CHECKPOINT`); err != nil {
		return fmt.Errorf("%s: checkpoint: %w", n.Name, err)
	}
	return nil
}
