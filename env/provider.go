package env

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"syscall"
	"time"
)

// Provider builds clusters and removes them by name.
type Provider interface {
	Up(ctx context.Context, spec Spec) (*Cluster, error)
	Down(ctx context.Context, name string) error
}

// StepFunc is told each step of a provider's work as it completes, so a
// CLI can show where the seconds of `up` went.
type StepFunc func(step string, took time.Duration)

// ExistsError means an env of that name is already up and healthy.
type ExistsError struct{ Name string }

func (e *ExistsError) Error() string {
	return fmt.Sprintf("env %q is already up (see: pgbenchx env status --name %s; remove it with: pgbenchx env down --name %s)", e.Name, e.Name, e.Name)
}

const passwordAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// newPassword makes a random password that needs no quoting in a URL, a
// conninfo string or a postgresql.conf value.
func newPassword() (string, error) {
	b := make([]byte, 24)
	max := big.NewInt(int64(len(passwordAlphabet)))
	for i := range b {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		b[i] = passwordAlphabet[n.Int64()]
	}
	return string(b), nil
}

// processAlive reports whether any process has this pid.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
