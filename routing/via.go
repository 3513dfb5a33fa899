package routing

import (
	"regexp"
	"strings"
	"sync/atomic"
)

// ViaPrefix marks a strategy that is not ours: via:NAME sends every read
// to one endpoint (pgpool-II, HAProxy, a Patroni stack's read port, any
// proxy) and the endpoint decides where it lands. The workload learns
// from each answer which node served it.
const ViaPrefix = "via:"

var viaName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Via names the strategy of reads through endpoint name.
func Via(name string) Strategy { return Strategy(ViaPrefix + name) }

// ViaName is the endpoint a via:NAME strategy reads through.
func ViaName(s Strategy) (string, bool) {
	return strings.CutPrefix(string(s), ViaPrefix)
}

// ValidViaName says whether name can name an endpoint: a-z, 0-9, '-'
// and '_', up to 32 characters.
func ValidViaName(name string) bool { return viaName.MatchString(name) }

// via is the balancer of a via:NAME strategy: there is one target, the
// endpoint (index 0), so it only counts what is in flight there.
type via struct{ inflight atomic.Int64 }

var _ Balancer = (*via)(nil)

func (v *via) Pick(Request) (int, error) { v.inflight.Add(1); return 0, nil }
func (v *via) Done(int, Outcome)         { v.inflight.Add(-1) }
func (v *via) InFlight(int) int64        { return v.inflight.Load() }
func (v *via) SetRoles(int, uint64)      {}
