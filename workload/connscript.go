package workload

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgbenchx/pgbenchx/script"
)

// scriptError is a script failing in a meta-command: its own fault, not
// the node's (classify counts it as script_error, the node stays in).
type scriptError struct{ err error }

func (e scriptError) Error() string { return e.err.Error() }
func (e scriptError) Unwrap() error { return e.err }

// prepareScript prepares every statement of script kind (prepared
// protocol only): one that cannot be (a table that does not exist) would
// fail every read, so the run is refused up front.
func (rc *readConn) prepareScript(ctx context.Context, c *pgconn.PgConn, kind int) error {
	if rc.protocol != "prepared" {
		return nil
	}
	sc := rc.queries[kind].script
	stmts := rc.scriptStatements(kind)
	for i := range sc.Steps {
		step := &sc.Steps[i]
		if step.Kind != script.StepSQL || stmts[i] != nil {
			continue
		}
		sd, err := c.Prepare(ctx, "q"+strconv.Itoa(kind)+"_"+strconv.Itoa(i), step.SQL, nil)
		if err != nil {
			return fmt.Errorf("line %d: %w", step.Line, err)
		}
		stmts[i] = sd
	}
	return nil
}

// scriptStatements are script kind's statements prepared on the
// connection, by step (nil: not yet).
func (rc *readConn) scriptStatements(kind int) []*pgconn.StatementDescription {
	if rc.scriptStmts == nil {
		rc.scriptStmts = make([][]*pgconn.StatementDescription, len(rc.queries))
	}
	if rc.scriptStmts[kind] == nil {
		rc.scriptStmts[kind] = make([]*pgconn.StatementDescription, len(rc.queries[kind].script.Steps))
	}
	return rc.scriptStmts[kind]
}

// runScript runs a pgbench script whole: its meta-commands on the
// client's variables, its statements in order on this connection, as
// pgbench runs a transaction.
func (rc *readConn) runScript(ctx context.Context, c *pgconn.PgConn, q *query, kind int, st *script.State, deadline time.Time) error {
	sc := q.script
	err := func() error {
		for i := range sc.Steps {
			step := &sc.Steps[i]
			switch step.Kind {
			case script.StepSet:
				if err := st.Set(step); err != nil {
					return scriptError{err}
				}
			case script.StepSleep:
				d, err := st.Sleep(step)
				if err != nil {
					return scriptError{err}
				}
				if rc.timeout > 0 && d >= rc.timeout {
					// The script's own pause outlasts any try: its fault,
					// not the node's (a timeout would eject the node).
					return scriptError{fmt.Errorf("%s: \\sleep %s outlasts --query-timeout %s", sc.Name, d, rc.timeout)}
				}
				late := false
				if !deadline.IsZero() && time.Until(deadline) < d {
					// The statements before it took the try's time.
					d, late = max(0, time.Until(deadline)), true
				}
				// The phase's end or Ctrl-C cuts a pause short.
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
				if late {
					return os.ErrDeadlineExceeded
				}
			case script.StepSQL:
				if err := rc.scriptStatement(c, kind, i, step, st); err != nil {
					return err
				}
			}
		}
		return nil
	}()
	if !c.IsClosed() && c.TxStatus() != 'I' {
		// A statement that failed inside the script's BEGIN left the
		// transaction aborted, or the script never ended it: end it, or
		// every later read on this connection fails.
		_ = c.Exec(context.Background(), "ROLLBACK").Close()
		if err == nil {
			err = scriptError{fmt.Errorf("%s ended inside a transaction (rolled back): end it with END or COMMIT", sc.Name)}
		}
	}
	return err
}

// scriptStatement runs step i of a script with its variables' values.
func (rc *readConn) scriptStatement(c *pgconn.PgConn, kind, i int, step *script.Step, st *script.State) error {
	ctx := context.Background()
	if rc.protocol == "simple" {
		sql, err := st.Literal(step)
		if err != nil {
			return scriptError{err}
		}
		return c.Exec(ctx, sql).Close()
	}
	args, err := st.AppendArgs(step, rc.args[:0])
	if err != nil {
		return scriptError{err}
	}
	rc.args = args
	var rr *pgconn.ResultReader
	if rc.protocol == "extended" {
		rr = c.ExecParams(ctx, step.SQL, args, nil, nil, nil)
	} else {
		stmts := rc.scriptStatements(kind)
		sd := stmts[i]
		if sd == nil {
			if sd, err = c.Prepare(ctx, "q"+strconv.Itoa(kind)+"_"+strconv.Itoa(i), step.SQL, nil); err != nil {
				return err
			}
			stmts[i] = sd
		}
		rr = c.ExecStatement(ctx, sd, args, nil, nil)
	}
	_, err = rr.Close()
	return err
}
