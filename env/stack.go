package env

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/pgbenchx/pgbenchx/input"
)

// Stacks are what routes reads for the application in production, built
// around an env so they can be measured beside client-side routing
// (run --strategies lag-aware,via:pgpool): a proxy in front of the nodes
// (env up --proxy pgpool|haproxy), or the whole cluster run by Patroni
// with HAProxy routing by its health checks (env up --stack patroni).
// Every process belongs to the env: its state lists them, down stops
// them, their logs sit beside the nodes'.

// Proxy kinds.
const (
	ProxyPgpool  = "pgpool"
	ProxyHAProxy = "haproxy"
	StackPatroni = "patroni"
)

// ProxySpec asks for one proxy: its kind and options
// (pgpool:delay_threshold=8kB,prefer_lower_delay_standby=on;
// haproxy:balance=leastconn).
type ProxySpec struct {
	Kind    string
	Options map[string]string
}

// Proxy is a proxy an env runs: clients reach the nodes through Port
// (HAProxy: its read port, balancing over the standbys; WritePort the
// primary's) and it decides where each statement or connection lands.
type Proxy struct {
	Kind      string            `json:"kind"` // pgpool | haproxy
	Port      int               `json:"port"`
	WritePort int               `json:"write_port,omitempty"`
	PID       int               `json:"pid,omitempty"`
	Dir       string            `json:"dir"` // its configuration and run files
	LogFile   string            `json:"log_file"`
	Options   map[string]string `json:"options,omitempty"`
	// For is what it routes: "" the env's nodes, "patroni" a Patroni
	// stack's members (by their REST health checks).
	For string `json:"for,omitempty"`
}

// Name is what run's via: names it: its kind.
func (p *Proxy) Name() string { return p.Kind }

// DSN reaches the env through the proxy as its nodes' user; with
// password "" the password is left out (RedactedDSN's form).
func (p *Proxy) DSN(n *Node, password string) string {
	u := url.URL{Scheme: "postgres", Host: fmt.Sprintf("127.0.0.1:%d", p.Port), Path: "/" + n.Database,
		RawQuery: "sslmode=disable&application_name=pgbenchx"}
	if password != "" {
		u.User = url.UserPassword(n.User, password)
	} else {
		u.User = url.User(n.User)
	}
	return u.String()
}

// Describe says what the proxy is and does, for reports.
func (p *Proxy) Describe() string {
	var b strings.Builder
	switch p.Kind {
	case ProxyPgpool:
		fmt.Fprintf(&b, "pgpool-II on 127.0.0.1:%d, statement-level load balancing", p.Port)
	case ProxyHAProxy:
		fmt.Fprintf(&b, "HAProxy (TCP) on 127.0.0.1:%d over the standbys", p.Port)
		if p.For == StackPatroni {
			b.Reset()
			fmt.Fprintf(&b, "HAProxy (TCP) on 127.0.0.1:%d over the replicas Patroni's REST API calls healthy", p.Port)
		}
		if p.WritePort != 0 {
			fmt.Fprintf(&b, ", writes on :%d", p.WritePort)
		}
	default:
		fmt.Fprintf(&b, "%s on 127.0.0.1:%d", p.Kind, p.Port)
	}
	var opts []string
	for k, v := range p.Options {
		opts = append(opts, k+"="+v)
	}
	sort.Strings(opts)
	if len(opts) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(opts, ", "))
	}
	return b.String()
}

// PgpoolChildren is how many clients a pgpool takes at once: its
// num_init_children (the option if given, else what startProxy sets).
func PgpoolChildren(p *Proxy) int {
	if v, err := strconv.Atoi(p.Options["num_init_children"]); err == nil && v > 0 {
		return v
	}
	return pgpoolDefaultChildren
}

// ProxyRuns says whether p's process is alive.
func ProxyRuns(p *Proxy) bool { return proxyRuns(p) }

// ParseProxies reads --proxy (repeatable): pgpool or haproxy, each with
// options after a colon, key=value comma-separated.
func ParseProxies(items []string) ([]ProxySpec, error) {
	// The flag parser splits a value at its commas: an item that names no
	// proxy continues the options of the one before
	// (pgpool:delay_threshold=8kB,prefer_lower_delay_standby=on).
	joined := input.Rejoin(items, func(item string) bool {
		kind, _, _ := strings.Cut(strings.TrimSpace(item), ":")
		kind = strings.ToLower(kind)
		return kind == ProxyPgpool || kind == ProxyHAProxy || !strings.Contains(item, "=")
	})
	var out []ProxySpec
	seen := map[string]bool{}
	for _, item := range joined {
		// "haproxy,balance=leastconn": its options after a comma.
		if k, rest, ok := strings.Cut(item, ","); ok && !strings.Contains(k, ":") {
			item = k + ":" + rest
		}
		kind, opts, _ := strings.Cut(strings.TrimSpace(item), ":")
		kind = strings.ToLower(kind)
		if kind != ProxyPgpool && kind != ProxyHAProxy {
			return nil, input.Bad("proxy", item, "want pgpool or haproxy, with options after a colon, e.g. pgpool:delay_threshold=8kB,prefer_lower_delay_standby=on")
		}
		if seen[kind] {
			return nil, input.Bad("proxy", item, "give each proxy once")
		}
		seen[kind] = true
		ps := ProxySpec{Kind: kind, Options: map[string]string{}}
		for _, kv := range strings.Split(opts, ",") {
			if strings.TrimSpace(kv) == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if !ok || !settingRE.MatchString(k) || v == "" || strings.ContainsAny(v, "'\n\\") {
				return nil, input.Bad("proxy", item, "options are key=value pairs, comma-separated, e.g. pgpool:delay_threshold=8kB")
			}
			ps.Options[k] = v
		}
		out = append(out, ps)
	}
	return out, nil
}

// ParseStack reads --stack: patroni, or "" for none.
func ParseStack(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return "", nil
	case StackPatroni:
		return StackPatroni, nil
	}
	return "", input.Bad("stack", s, "want patroni (Patroni + etcd run the cluster, HAProxy routes by Patroni's health checks)")
}

// PatroniStack is what runs a Patroni env besides the nodes' postmasters
// (which Patroni starts and owns): etcd and one Patroni per node.
type PatroniStack struct {
	Scope     string         `json:"scope"` // the Patroni cluster's name
	Etcd      StackProcess   `json:"etcd"`
	EtcdPort  int            `json:"etcd_port"`
	Members   []StackProcess `json:"members"` // one Patroni per node, in node order
	RESTPorts []int          `json:"rest_ports"`
}

// StackProcess is a process of a stack: what to stop, where it logs.
type StackProcess struct {
	Name    string `json:"name"`
	PID     int    `json:"pid"`
	LogFile string `json:"log_file"`
	Dir     string `json:"dir,omitempty"`
}
