package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/urfave/cli/v3"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/workload"
)

// cleanConnectTimeout bounds the connection to the primary: an address that
// does not answer fails in seconds, not minutes.
const cleanConnectTimeout = 5 * time.Second

// cleanLockTimeout bounds the wait for the schema's locks: a run in
// progress holds them, and clean says so instead of hanging.
const cleanLockTimeout = "30s"

func cleanCommand() *cli.Command {
	return &cli.Command{
		Name:  "clean",
		Usage: "drop what pgbenchx created on a cluster (schema pgbenchx) and nothing else",
		Description: `Everything pgbenchx creates on a cluster lives in one schema, pgbenchx:
the workload's tables (pgbenchx.orders, pgbenchx.heartbeat) and env verify's
probe table (pgbenchx.probe). pgbenchx marks that schema as its own with a
comment when it creates it. clean drops it, with everything in it, on the
primary (standbys follow by replication). Nothing outside it is touched: a
table of yours named orders in another schema keeps its rows and indexes.

clean refuses (exit 2, nothing changed) when the database has a schema named
pgbenchx that pgbenchx did not create, or when objects outside the schema
(a view, a foreign key, a default) depend on what is inside it. With no
pgbenchx schema there, it says there is nothing to drop and exits 0.

The target is --primary DSN (an existing cluster), else the primary of the
env --name (default "default"); --primary wins when both are given.

Examples:
  pgbenchx clean                                   # the default env's primary
  pgbenchx clean --name lab2
  pgbenchx clean --primary "postgres://bench:secret@db1.example:5432/app"

Exit codes: 0 dropped, or nothing to drop; 1 failed (e.g. the primary is
unreachable); 2 bad input (nothing was changed).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "primary", Usage: "DSN of an existing cluster's primary (URL or key=value); else the env's primary"},
			nameFlag,
		},
		Action: clean,
	}
}

func clean(ctx context.Context, cmd *cli.Command) error {
	if cmd.Args().Len() > 0 {
		return usageError{fmt.Errorf("%s takes no arguments, got %q (see: %s --help)", cmd.FullName(), cmd.Args().First(), cmd.FullName())}
	}
	var (
		cfg   *pgx.ConnConfig
		where string // names the primary in every line, never with its password
	)
	if dsn := cmd.String("primary"); dsn != "" {
		c, err := pgx.ParseConfig(dsn)
		if err != nil {
			// pgx's message can quote the DSN: never echo it, password and all.
			return &input.Error{Flag: "primary", Value: "(DSN)", Accepted: "not a valid PostgreSQL connection string (URL or key=value)"}
		}
		n := env.Node{Name: "primary", Host: c.Host, Port: int(c.Port), User: c.User, Password: c.Password, Database: c.Database}
		cfg, where = c, "primary "+n.RedactedDSN()
	} else {
		c, err := loadEnv(cmd)
		if err != nil {
			return err
		}
		cfg, err = pgx.ParseConfig(c.Primary.DSN())
		if err != nil {
			return fmt.Errorf("env %q: primary's DSN: %w", c.Name, redactErr(err, c.Primary.Password))
		}
		where = fmt.Sprintf("env %q primary (%s)", c.Name, c.Primary.RedactedDSN())
	}
	cfg.ConnectTimeout = cleanConnectTimeout
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["lock_timeout"] = cleanLockTimeout
	cctx, cancel := context.WithTimeout(ctx, cleanConnectTimeout)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("%s: cannot connect: %s", where, oneLine(redactErr(err, cfg.Password)))
	}
	defer conn.Close(context.WithoutCancel(ctx))

	dropped, err := workload.Clean(ctx, conn)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
	case isBadInput(err):
		return fmt.Errorf("%s: %w", where, err)
	case errors.As(err, &pgErr) && pgErr.Code == "55P03":
		return fmt.Errorf("%s: schema %s is in use (a run in progress?): its locks were not free within %s; try again when it ends", where, workload.Schema, cleanLockTimeout)
	default:
		return fmt.Errorf("%s: clean: %s", where, oneLine(redactErr(err, cfg.Password)))
	}
	out := cmd.Root().Writer
	if dropped {
		fmt.Fprintf(out, "dropped schema %s and everything in it on %s\n", workload.Schema, where)
	} else {
		fmt.Fprintf(out, "nothing to drop: no schema %s on %s\n", workload.Schema, where)
	}
	return nil
}

// oneLine keeps an error to one line of output.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// redactErr keeps a password out of an error's text: where it stands in a
// DSN, never as a substring elsewhere (a password "p" must not turn "tcp"
// into "tcxxxxx").
func redactErr(err error, password string) error {
	return errors.New(workload.Redactor(password)(err.Error()))
}
