package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/workload"
)

// externalTarget describes a cluster given by DSNs. Nothing there is
// provisioned or changed except the workload's own tables.
func externalTarget(primary string, standbys []string) (*target, error) {
	t := &target{cleanup: func() {}}
	t.environment = metrics.Environment{Provider: "external", Standbys: len(standbys), Cores: runtime.NumCPU()}
	dsns := append([]string{primary}, standbys...)
	for i, dsn := range dsns {
		name, role, flag := "primary", "primary", "primary"
		if i > 0 {
			name, role, flag = env.StandbyName(i), "standby", "standby"
		}
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			// pgx's message can quote the DSN: never echo it, password and all.
			return nil, &input.Error{Flag: flag, Value: "(DSN " + fmt.Sprint(i+1) + ")", Accepted: "not a valid PostgreSQL connection string (URL or key=value)"}
		}
		n := env.Node{Name: name, Role: env.Role(role), Host: cfg.Host, Port: int(cfg.Port), User: cfg.User, Password: cfg.Password, Database: cfg.Database}
		t.nodes = append(t.nodes, workload.Node{Name: name, Role: role, DSN: dsn})
		t.environment.Nodes = append(t.environment.Nodes, metrics.NodeInfo{Name: name, Role: role, DSN: n.RedactedDSN()})
		if i == 0 {
			// An unreachable cluster fails in seconds, naming the node,
			// not after the kernel's TCP timeout.
			if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > 5*time.Second {
				cfg.ConnectTimeout = 5 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err == nil {
				_ = conn.QueryRow(ctx, `SHOW server_version`).Scan(&t.environment.ServerVersion)
				conn.Close(ctx)
			}
			cancel()
			if err != nil {
				return nil, fmt.Errorf("primary %s: %w", n.RedactedDSN(), redactErr(err, cfg.Password))
			}
		}
	}
	return t, nil
}

// redactErr keeps a password out of an error's text: where it stands in a
// DSN, never as a substring elsewhere (a password "p" must not turn "tcp"
// into "tcxxxxx").
func redactErr(err error, password string) error {
	return errors.New(strings.Join(strings.Fields(workload.Redactor(password)(err.Error())), " "))
}
