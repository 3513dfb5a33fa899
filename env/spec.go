package env

import (
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pgbenchx/pgbenchx/input"
)

// Limits on what a Spec may ask for. MaxStandbys keeps a lab on one host
// within what its ports, memory and max_wal_senders sensibly allow.
const (
	MaxStandbys   = 16
	MaxApplyDelay = time.Hour
	DefaultName   = "default"
)

// Topology says where standbys stream from.
type Topology string

const (
	// Star: every standby streams from the primary.
	Star Topology = "star"
	// Cascade: standby1 streams from the primary, the others from standby1.
	Cascade Topology = "cascade"
)

// Setting is one postgresql.conf parameter applied to every node.
type Setting struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Spec is what a caller asks a provider to build.
type Spec struct {
	Name     string
	Standbys int
	Topology Topology
	// ApplyDelay sets recovery_min_apply_delay per standby name ("standby2").
	ApplyDelay map[string]time.Duration
	// Settings are applied to every node, after pgbenchx's own.
	Settings []Setting
	// Fast turns fsync off (and keeps data folders in RAM): for tests and
	// CI only, since numbers measured without durable commits mean little.
	// synchronous_commit stays on: off, WAL would reach standbys only when
	// the WAL writer wakes (every 200 ms), faking ~100 ms of lag on every
	// standby and making nearly every read stale.
	Fast bool
	// CPUs caps nodes' CPU in cores: "*" for every node, or by node name.
	CPUs map[string]float64
	// Sync is the primary's synchronous_standby_names (ParseSync), set
	// once every standby streams; the zero rule is asynchronous.
	Sync SyncRule
	// Memory caps nodes' memory in bytes ("*" for every node, or by node
	// name): container limits, so the docker provider only.
	Memory map[string]int64
	// NetLinks puts standbys behind slow links (ParseNetDelays,
	// ParseNetBandwidths), by standby name; their ports are the env's.
	NetLinks map[string]Link
	// Proxies run in front of the env (ParseProxies): pgpool, haproxy.
	Proxies []ProxySpec
	// Stack, when "patroni", has Patroni (and etcd) run the cluster, with
	// HAProxy routing by Patroni's health checks.
	Stack string
	// ReadPrimary gives the primary a read weight in the proxies (pgpool's
	// backend_weight0, HAProxy's read port); without it, 0.
	ReadPrimary bool
}

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
	standbyRE = regexp.MustCompile(`^standby([1-9][0-9]*)$`)
	settingRE = regexp.MustCompile(`^[a-z_][a-z0-9_.]*$`)
)

// CheckProvider refuses what a spec asks of a provider that cannot do it:
// memory caps are container limits (docker only).
func CheckProvider(provider string, s Spec) error {
	switch {
	case provider != DockerName && len(s.Memory) > 0:
		return input.Bad("memory", "", "is a container's limit: use it with --provider docker")
	case provider != LocalName && len(s.Proxies) > 0:
		return input.Bad("proxy", s.Proxies[0].Kind, "proxies run beside a local env: use --provider local")
	case provider != LocalName && s.Stack != "":
		return input.Bad("stack", s.Stack, "a Patroni stack runs on the local provider: use --provider local")
	case s.Stack != "" && (s.Topology == Cascade || s.Sync.String() != "" || len(s.NetLinks) > 0 || len(s.ApplyDelay) > 0 || len(s.CPUs) > 0):
		return input.Bad("stack", s.Stack, "Patroni builds a star of asynchronous standbys here: leave out --topology cascade, --sync, --apply-delay, --cpus and --net-delay/--net-bandwidth")
	case s.Stack != "" && (len(s.Proxies) > 0 || s.ReadPrimary):
		return input.Bad("stack", s.Stack, "the Patroni stack brings its own HAProxy (via:haproxy): leave out --proxy and --read-primary")
	}
	return nil
}

// ValidateName checks an env name: it becomes part of folder names, slot
// names and process titles, so it is kept short and plain.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return input.Bad("name", name, "want 1-32 characters of a-z, 0-9, '-' or '_', starting with a letter or digit")
	}
	return nil
}

// ParseTopology accepts "star" or "cascade" (empty means star).
func ParseTopology(s string) (Topology, error) {
	switch Topology(strings.ToLower(strings.TrimSpace(s))) {
	case "", Star:
		return Star, nil
	case Cascade:
		return Cascade, nil
	}
	return "", input.Bad("topology", s, "accepted: star (every standby streams from the primary) or cascade (standby2.. stream from standby1)")
}

// ParseApplyDelays reads specs such as "standby2=500ms", each item possibly
// a comma-separated list, into a map by standby name.
func ParseApplyDelays(specs []string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	err := standbyItems(specs, "apply-delay", "want standbyN=DURATION, e.g. standby2=500ms", func(node, val, item string) error {
		d, err := time.ParseDuration(val)
		if err != nil || d < 0 || d > MaxApplyDelay {
			return input.Bad("apply-delay", item, "want a duration from 0 to 1h such as 500ms or 2s")
		}
		if d%time.Millisecond != 0 {
			return input.Bad("apply-delay", item, "recovery_min_apply_delay has millisecond resolution")
		}
		out[node] = d
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// managedSettings are set per node by the provider; letting the user set
// them would break the lab (wrong port, wrong listen address, no replication).
var managedSettings = map[string]bool{
	"port": true, "listen_addresses": true, "unix_socket_directories": true,
	"data_directory": true, "hba_file": true, "ident_file": true, "config_file": true,
	"primary_conninfo": true, "primary_slot_name": true, "cluster_name": true,
	"recovery_min_apply_delay": true, "wal_level": true,
}

// ParseSettings reads repeated key=value flags.
func ParseSettings(specs []string) ([]Setting, error) {
	var out []Setting
	seen := map[string]bool{}
	for _, spec := range specs {
		key, val, ok := strings.Cut(spec, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if !ok || !settingRE.MatchString(key) {
			return nil, input.Bad("pg-setting", spec, "want key=value with a postgresql.conf parameter name, e.g. shared_buffers=256MB")
		}
		if managedSettings[key] {
			return nil, input.Bad("pg-setting", spec, "%s is set by pgbenchx per node (use --apply-delay for recovery_min_apply_delay)", key)
		}
		if seen[key] {
			return nil, input.Bad("pg-setting", spec, "%s is given twice", key)
		}
		seen[key] = true
		out = append(out, Setting{Key: key, Value: strings.TrimSpace(val)})
	}
	return out, nil
}

// Validate checks the spec as a whole; the parsers above check each flag.
func (s *Spec) Validate() error {
	if s.Name == "" {
		s.Name = DefaultName
	}
	if err := ValidateName(s.Name); err != nil {
		return err
	}
	if s.Standbys < 0 || s.Standbys > MaxStandbys {
		return input.Bad("standbys", strconv.Itoa(s.Standbys), "want a whole number from 0 to %d", MaxStandbys)
	}
	switch {
	case len(s.Proxies) > 0 && s.Standbys == 0 && !s.ReadPrimary:
		return input.Bad("proxy", s.Proxies[0].Kind, "a proxy in front of an env without standbys has nothing to read from: add --standbys, or --read-primary")
	case s.ReadPrimary && len(s.Proxies) == 0 && s.Stack == "":
		return input.Bad("read-primary", "", "is the proxies' setting: use it with --proxy (run takes its own --read-primary)")
	case s.Stack == StackPatroni && s.Standbys == 0:
		return input.Bad("standbys", "0", "a Patroni stack needs a replica to fail over to: --standbys 1 or more")
	}
	if s.Topology == "" {
		s.Topology = Star
	}
	if _, err := ParseTopology(string(s.Topology)); err != nil {
		return err
	}
	for _, n := range capNames(s.CPUs) {
		if n == "*" || n == "primary" {
			continue
		}
		if i, _ := strconv.Atoi(strings.TrimPrefix(n, "standby")); i > s.Standbys {
			return input.Bad("cpus", n, "this env has standby1..standby%d", s.Standbys)
		}
	}
	if err := s.Sync.checkNames(s.Standbys); err != nil {
		return err
	}
	if err := checkLinks(s.NetLinks, s.Standbys); err != nil {
		return err
	}
	for n := range s.Memory {
		if n == "*" {
			continue
		}
		if i, _ := strconv.Atoi(strings.TrimPrefix(n, "standby")); strings.HasPrefix(n, "standby") && i > s.Standbys {
			return input.Bad("memory", n, "this env has standby1..standby%d", s.Standbys)
		}
	}
	if s.Topology == Cascade && len(s.Sync.Names) > 0 && (s.Sync.Num > 1 || !slices.Contains(s.Sync.Names, "standby1")) {
		// Only a standby streaming from the primary can acknowledge its
		// commits: in a cascade, standby1 alone.
		return input.Bad("sync", s.Sync.String(), "with --topology cascade only standby1 streams from the primary: name it, with n 1")
	}
	names := make([]string, 0, len(s.ApplyDelay))
	for n := range s.ApplyDelay {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		m := standbyRE.FindStringSubmatch(n)
		if m == nil {
			return input.Bad("apply-delay", n, "want standby1..standby%d", s.Standbys)
		}
		if i, _ := strconv.Atoi(m[1]); i > s.Standbys {
			if s.Standbys == 0 {
				return input.Bad("apply-delay", n+"="+s.ApplyDelay[n].String(), "this env has no standbys")
			}
			return input.Bad("apply-delay", n+"="+s.ApplyDelay[n].String(), "this env has standby1..standby%d", s.Standbys)
		}
	}
	return nil
}

// StandbyName is the name of the i-th standby, counting from 1.
func StandbyName(i int) string { return "standby" + strconv.Itoa(i) }

// SlotName is the physical replication slot a standby streams through.
func SlotName(standby string) string { return standby + "_slot" }
