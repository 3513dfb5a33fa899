package env

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgbenchx/pgbenchx/input"
)

// Provider builds clusters, removes them by name and controls the nodes of
// the clusters it built. Every provider keeps one state file per env in a
// Store, recording its own name in Cluster.Provider, so that a later
// process finds the provider of an env with ProviderOf.
type Provider interface {
	// Name is the name the provider is registered under ("local").
	Name() string
	// Up builds a cluster; on failure it removes what it had built.
	Up(ctx context.Context, spec Spec) (*Cluster, error)
	// Down stops every node of the named env (whatever state a fault left
	// it in: stopped, killed, frozen, failed over) and removes its slots,
	// folders and state file.
	Down(ctx context.Context, name string) error
	// Control returns the Controller of a cluster this provider built: it
	// changes that *Cluster value and its state file as nodes change.
	Control(c *Cluster) (Controller, error)
}

// Options configure a provider when it is looked up. Zero fields take the
// defaults; a provider ignores the fields it has no use for. A caller that
// needs more than these may type-assert the Provider (*Local) and set its
// fields before use.
type Options struct {
	// Store is where state files live (zero: DefaultStateDir()).
	Store Store
	// Step is told each step of Up and Down as it completes (nil: nothing).
	Step StepFunc

	// Local provider: initdb template cache (zero: DefaultCacheDir()),
	// folder of the server binaries (zero: FindPgBin's search) and, when run
	// as root, the OS user who runs the servers (zero: postgres).
	CacheDir string
	PgBin    string
	OSUser   string

	// Docker provider: the image the nodes run (zero: DefaultImage).
	Image string
}

// Factory makes a provider configured by the options.
type Factory func(Options) Provider

var registry = struct {
	sync.RWMutex
	factories map[string]Factory
}{factories: map[string]Factory{}}

// Register makes a provider available by name to Lookup and ProviderOf.
// Providers register themselves in an init function; registering a name
// twice, an empty name or a nil factory panics (a programming error).
func Register(name string, factory Factory) {
	if name == "" || factory == nil {
		panic("env: Register needs a name and a factory")
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.factories[name]; dup {
		panic("env: provider " + name + " registered twice")
	}
	registry.factories[name] = factory
}

// Providers lists the registered provider names, sorted.
func Providers() []string {
	registry.RLock()
	defer registry.RUnlock()
	names := make([]string, 0, len(registry.factories))
	for n := range registry.factories {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Lookup returns the provider registered as name, configured by opts (at
// most one; none means defaults). An unknown name is bad input
// (*input.Error for --provider) listing the registered names.
func Lookup(name string, opts ...Options) (Provider, error) {
	registry.RLock()
	f := registry.factories[name]
	registry.RUnlock()
	if f == nil {
		return nil, input.Bad("provider", name, "accepted: %s", strings.Join(Providers(), ", "))
	}
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Store.Dir == "" {
		o.Store.Dir = DefaultStateDir()
	}
	return f(o), nil
}

// ProviderOf returns the provider that built c, as its state records it,
// configured by opts. When opts name no Store, the provider uses the store
// c was loaded from or saved to (else the default): Down, Control and the
// state file then agree on where c lives.
func ProviderOf(c *Cluster, opts ...Options) (Provider, error) {
	if c == nil {
		return nil, errors.New("env: ProviderOf(nil)")
	}
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Store.Dir == "" {
		o.Store.Dir = c.stateDir
	}
	name := c.Provider
	if name == "" {
		name = "local" // every state file so far was the local provider's
	}
	p, err := Lookup(name, o)
	if err != nil {
		return nil, fmt.Errorf("env %q was built by provider %q, which this pgbenchx does not have (it has: %s)",
			c.Name, name, strings.Join(Providers(), ", "))
	}
	return p, nil
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
