//go:build !linux

package workload

import "github.com/jackc/pgx/v5/pgconn"

// directDial is dial as it is off Linux (see direct_linux.go).
func directDial(dial pgconn.DialFunc) pgconn.DialFunc { return dial }
