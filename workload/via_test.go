package workload_test

import (
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/env/envtest"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/routing"
	"github.com/pgbenchx/pgbenchx/workload"
)

// TestViaAttributesReads reads through an endpoint that is itself a node
// (standby2's own DSN): every built-in read must be counted on standby2,
// by the port and cluster_name the server reports, with its staleness
// checked; a query-file read, which reports nothing, is unattributed.
func TestViaAttributesReads(t *testing.T) {
	c, _ := envtest.Up(t, env.Spec{Name: "wvia", Standbys: 2, Fast: true})
	cfg := testConfig(routing.Via("direct"), routing.RoundRobin)
	cfg.Duration, cfg.Warmup, cfg.WriteRows, cfg.Clients = 2*time.Second, 0, 0, 2
	cfg.Mix = []workload.Weighted{{Kind: "point", Weight: 9}}
	cfg.Custom = []workload.CustomQuery{{Name: "plain", Weight: 1, SQL: "SELECT 1"}}
	cfg.Vias = []workload.Via{{Name: "direct", DSN: c.Standbys[1].DSN()}}
	res, err := runWith(t, c, cfg, workload.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	via, rr := res.Strategies[0], res.Strategies[1]
	if via.Strategy != "via:direct" {
		t.Fatalf("strategies %s, %s", via.Strategy, rr.Strategy)
	}
	byNode := map[string]*metrics.NodeResult{}
	for _, n := range via.Nodes {
		byNode[n.Node] = n
	}
	s2, un := byNode["standby2"], byNode[metrics.Unattributed]
	if s2 == nil || un == nil || un.Role != metrics.RoleUnknown {
		t.Fatalf("via:direct rows: %v", byNode)
	}
	if n := s2.Kinds["point"].TotalCount(); n < 100 {
		t.Errorf("%d point reads counted on standby2, the endpoint's node", n)
	}
	for _, node := range []string{"primary", "standby1"} {
		if n := byNode[node].Total().TotalCount(); n != 0 {
			t.Errorf("%d reads through standby2's endpoint counted on %s", n, node)
		}
	}
	if un.Kinds["point"].TotalCount() != 0 || un.Kinds["plain"].TotalCount() == 0 {
		t.Errorf("unattributed: %d point (want 0), %d plain (want > 0)", un.Kinds["point"].TotalCount(), un.Kinds["plain"].TotalCount())
	}
	if s2.StaleChecked == 0 {
		t.Error("reads through the endpoint were not checked for staleness")
	}
	for _, n := range rr.Nodes {
		if n.Node == metrics.Unattributed {
			t.Error("a strategy of ours has an unattributed row")
		}
	}
}
