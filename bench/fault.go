package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pgbenchx/pgbenchx/env"
	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
	"github.com/pgbenchx/pgbenchx/routing"
	"github.com/pgbenchx/pgbenchx/workload"
)

// Action is what a fault does to a node.
type Action string

const (
	Kill     Action = "kill"     // SIGKILL the postmaster: a crash
	Stop     Action = "stop"     // fast shutdown
	Restart  Action = "restart"  // stop if running, then start
	Freeze   Action = "freeze"   // SIGSTOP: a hung host
	Thaw     Action = "thaw"     // SIGCONT
	Failover Action = "failover" // the primary dies, NODE is promoted, the others follow it
	// Partition cuts a standby's slow link (env up --net-delay or
	// --net-bandwidth on it): nothing goes through either way, in its
	// clients' connections or its replication, and nothing is closed
	// while it lasts. Heal ends it, closing the cut connections.
	Partition Action = "partition"
	Heal      Action = "heal"
)

// Actions are the fault actions, in the order --help lists them.
var Actions = []Action{Kill, Stop, Restart, Freeze, Thaw, Failover, Partition, Heal}

// Fault is one scheduled fault: At after the first measured second of
// the first strategy, Action on Node.
type Fault struct {
	At     time.Duration
	Action Action
	Node   string
}

func (f Fault) String() string { return fmt.Sprintf("%s:%s:%s", f.At, f.Action, f.Node) }

// ParseFault reads AT:ACTION:NODE ("5s:kill:standby2").
func ParseFault(s string) (Fault, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return Fault{}, input.Bad("fault", s, "want AT:ACTION:NODE, e.g. 5s:kill:standby2")
	}
	at, err := time.ParseDuration(parts[0])
	if err != nil || at < 0 {
		return Fault{}, input.Bad("fault", s, "AT is a time since the first measured second, like 5s or 1m30s")
	}
	a := Action(parts[1])
	if !slices.Contains(Actions, a) {
		return Fault{}, input.Bad("fault", s, "ACTION is one of %s", joinActions())
	}
	if parts[2] == "" {
		return Fault{}, input.Bad("fault", s, "NODE is a node of the env: primary, standby1, ...")
	}
	return Fault{At: at, Action: a, Node: parts[2]}, nil
}

func joinActions() string {
	names := make([]string, len(Actions))
	for i, a := range Actions {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}

// measuredSpan is the time from the first measured second of the first
// strategy to the end of the last one's, without the settles between
// them (their length is unknown beforehand): a fault at or past it would
// never happen.
func measuredSpan(w workload.Config) time.Duration {
	n := time.Duration(len(w.Strategies))
	return n*w.Duration + (n-1)*w.Warmup
}

// checkFaults refuses faults that cannot run on the target: an existing
// cluster (pgbenchx touches nothing of it but its schema), a node it
// lacks, a failover to the primary, a time past the run's end. Nodes nil
// skips the node checks (the env's nodes are not known yet).
func checkFaults(faults []Fault, t Target, w workload.Config, nodes []workload.Node) error {
	if len(faults) == 0 {
		return nil
	}
	if t.External() {
		return input.Bad("fault", faults[0].String(), "faults need an env pgbenchx controls (--name); on a cluster given by --primary nothing but the pgbenchx schema is touched")
	}
	span := measuredSpan(w)
	for _, f := range faults {
		if f.At >= span {
			return input.Bad("fault", f.String(), "AT is past the run's end: the measured time is %s (%d strategies x --duration %s, warmups between): want below %s",
				span, len(w.Strategies), w.Duration, span)
		}
		if nodes == nil {
			continue
		}
		i := slices.IndexFunc(nodes, func(n workload.Node) bool { return n.Name == f.Node })
		if i < 0 {
			names := make([]string, len(nodes))
			for k, n := range nodes {
				names[k] = n.Name
			}
			return input.Bad("fault", f.String(), "NODE is one of %s", strings.Join(names, ", "))
		}
		if f.Action == Failover && nodes[i].Role != "standby" {
			return input.Bad("fault", f.String(), "failover promotes a standby: name one, not the %s", nodes[i].Role)
		}
	}
	return nil
}

// faultRunner injects the faults on their schedule once the first
// strategy starts measuring, each told to the scenario as an event when
// it begins and when it is done (with how long it took), so the reports
// mark them on the series.
type faultRunner struct {
	faults []Fault
	ctl    env.Controller
	c      *env.Cluster
	sc     *workload.Scenario
	say    func(string)

	once      sync.Once
	wg        sync.WaitGroup
	mu        sync.Mutex // one fault at a time: a Controller changes the Cluster
	errs      []string
	failovers []metrics.Failover
}

// measuring is the workload's Measuring hook: the first call starts the
// schedule.
func (fr *faultRunner) measuring(ctx context.Context) func(routing.Strategy, time.Time) {
	return func(_ routing.Strategy, start time.Time) {
		fr.once.Do(func() {
			for _, f := range fr.faults {
				fr.wg.Add(1)
				go func() {
					defer fr.wg.Done()
					t := time.NewTimer(time.Until(start.Add(f.At)))
					defer t.Stop()
					select {
					case <-ctx.Done():
						return
					case <-t.C:
					}
					fr.inject(ctx, f)
				}()
			}
		})
	}
}

func (fr *faultRunner) inject(ctx context.Context, f Fault) {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	fr.sc.Event(string(f.Action), f.Node, "fault injected: "+f.String())
	t0 := time.Now()
	var err error
	detail := ""
	switch f.Action {
	case Kill:
		err = fr.ctl.Kill(ctx, f.Node)
	case Stop:
		err = fr.ctl.Stop(ctx, f.Node)
	case Freeze:
		err = fr.ctl.Freeze(ctx, f.Node)
	case Thaw:
		err = fr.ctl.Thaw(ctx, f.Node)
	case Restart:
		err = env.Restart(ctx, fr.ctl, f.Node)
	case Partition:
		err = env.Partition(fr.c, f.Node)
	case Heal:
		err = env.Heal(fr.c, f.Node)
	case Failover:
		var r *env.FailoverReport
		r, err = env.Failover(ctx, fr.ctl, fr.c, f.Node, func() {
			// The writer moves as soon as the new primary takes writes,
			// before the other standbys follow it.
			if _, rerr := fr.sc.Rediscover(ctx); rerr != nil {
				fr.fail(f, rerr)
			}
		})
		if r != nil {
			fr.failovers = append(fr.failovers, r.Record())
			detail = r.String()
			for name, fo := range r.Followers {
				fr.sc.Event("following", name, fmt.Sprintf("%s %s %s after the failover began", fo.How, f.Node, fo.Streaming.Round(time.Millisecond)))
			}
		}
	}
	if err != nil {
		fr.fail(f, err)
		fr.sc.Event(string(f.Action)+"-failed", f.Node, err.Error())
		return
	}
	if detail == "" {
		detail = fmt.Sprintf("done in %s", time.Since(t0).Round(time.Millisecond))
	}
	fr.sc.Event(string(f.Action)+"-done", f.Node, detail)
	if fr.say != nil {
		fr.say(fmt.Sprintf("fault %s: %s", f, detail))
	}
}

func (fr *faultRunner) fail(f Fault, err error) {
	fr.errs = append(fr.errs, fmt.Sprintf("fault %s: %v", f, err))
}

// wait waits for the faults under way and returns the failovers done
// and what failed.
func (fr *faultRunner) wait() ([]metrics.Failover, []string) {
	fr.wg.Wait()
	fr.mu.Lock()
	defer fr.mu.Unlock()
	return fr.failovers, fr.errs
}

// checkLinkFaults refuses a partition or heal of a standby with no slow
// link: only a link's proxy can cut it. linked names the standbys with
// a link.
func checkLinkFaults(faults []Fault, linked map[string]bool) error {
	for _, f := range faults {
		if (f.Action == Partition || f.Action == Heal) && !linked[f.Node] {
			return input.Bad("fault", f.String(), "%s cuts a standby's slow link: give %s one when the env is built (--net-delay %s=1ms is enough)", f.Action, f.Node, f.Node)
		}
	}
	return nil
}

// startFaults checks the faults on the nodes the scenario found and gets
// the env's controller: nothing has been written yet.
func startFaults(_ context.Context, cl *Cluster, cfg Config, sc *workload.Scenario, hooks *Hooks) (*faultRunner, error) {
	if err := checkFaults(cfg.Faults, cfg.Target, cfg.Workload, sc.Nodes()); err != nil {
		return nil, err
	}
	if cl.Env == nil {
		return nil, input.Bad("fault", cfg.Faults[0].String(), "faults need an env pgbenchx controls (--name)")
	}
	linked := map[string]bool{}
	for _, n := range cl.Env.Standbys {
		if n.Link != nil {
			linked[n.Name] = true
		}
	}
	if err := checkLinkFaults(cfg.Faults, linked); err != nil {
		return nil, err
	}
	if cl.Env.Patroni != nil {
		for _, f := range cfg.Faults {
			if f.Action != Failover {
				return nil, input.Bad("fault", f.String(), "env %q is run by Patroni, which restarts what it sees stop: only failover (the leader killed, Patroni elects) applies", cl.Env.Name)
			}
		}
	}
	p, err := env.ProviderOf(cl.Env)
	if err != nil {
		return nil, err
	}
	ctl, err := p.Control(cl.Env)
	if err != nil {
		return nil, err
	}
	return &faultRunner{faults: cfg.Faults, ctl: ctl, c: cl.Env, sc: sc, say: hooks.Say}, nil
}
