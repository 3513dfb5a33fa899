package env

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
)

// Role of a node in the cluster: the one type every package uses.
type Role = metrics.Role

const (
	RolePrimary = metrics.RolePrimary
	RoleStandby = metrics.RoleStandby
	// RoleDetached is a node that left replication: the old primary after
	// a failover. It is in Cluster.Detached, not among the nodes in service.
	RoleDetached Role = "detached"
)

// Node is one PostgreSQL server of a cluster.
type Node struct {
	Name     string `json:"name"`
	Role     Role   `json:"role"`
	Upstream string `json:"upstream,omitempty"` // the node a standby streams from
	Slot     string `json:"slot,omitempty"`     // its slot on the upstream
	Host     string `json:"host"`
	Port     int    `json:"port"`
	User     string `json:"user"`
	Password string `json:"password"`
	Database string `json:"database"`
	// ApplyDelay is the standby's recovery_min_apply_delay.
	ApplyDelay time.Duration `json:"apply_delay,omitempty"`

	// SocketDir is the folder of the node's Unix socket, for SocketDSN:
	// the env's Cluster.SocketDir (local provider only).
	SocketDir string `json:"socket_dir,omitempty"`

	// Local provider only.
	DataDir string `json:"data_dir,omitempty"`
	LogFile string `json:"log_file,omitempty"`
	PID     int    `json:"pid,omitempty"`
	// CPUs is the node's CPU quota in cores, Cgroup the cgroup enforcing
	// it (env up --cpus); zero and empty when uncapped.
	CPUs   float64 `json:"cpus,omitempty"`
	Cgroup string  `json:"cgroup,omitempty"`
	// MemoryBytes is the node's memory limit (env up --memory; docker
	// provider only); zero when unlimited.
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	// Container is the node's container (docker provider only).
	Container string `json:"container,omitempty"`
	// Link is the slow link the standby sits behind (env up
	// --net-delay): its DSN reaches it through the link's proxy.
	Link *Link `json:"link,omitempty"`
}

const redacted = "xxxxx"

// DSN is the node's full connection string, password included.
func (n *Node) DSN() string { return n.dsn(n.Password) }

// RedactedDSN is safe to print, log and store in reports.
func (n *Node) RedactedDSN() string {
	if n.Password == "" {
		return n.dsn("")
	}
	return n.dsn(redacted)
}

// SocketDSN reaches the node through its Unix socket (SocketDir) with the
// user, password and database of DSN: for a client on the same host, it
// skips the TCP stack. The socket takes scram-sha-256 passwords as TCP
// does. Empty when the node has no socket folder (not the local provider).
func (n *Node) SocketDSN() string { return n.socketDSN(n.Password) }

// RedactedSocketDSN is SocketDSN safe to print, log and store in reports.
func (n *Node) RedactedSocketDSN() string {
	if n.Password == "" {
		return n.socketDSN("")
	}
	return n.socketDSN(redacted)
}

func (n *Node) socketDSN(password string) string {
	if n.SocketDir == "" {
		return ""
	}
	u := n.url(password)
	u.Host = ""
	u.RawQuery = url.Values{"host": {n.SocketDir}, "port": {strconv.Itoa(n.Port)}, "sslmode": {"disable"}}.Encode()
	return u.String()
}

func (n *Node) dsn(password string) string { return n.url(password).String() }

func (n *Node) url(password string) *url.URL {
	port := n.Port
	if n.Link != nil && n.Link.ClientPort != 0 {
		port = n.Link.ClientPort // clients feel the link
	}
	u := url.URL{
		Scheme:   "postgres",
		Host:     net.JoinHostPort(n.Host, strconv.Itoa(port)),
		Path:     "/" + n.Database,
		RawQuery: "sslmode=disable",
	}
	if password != "" {
		u.User = url.UserPassword(n.User, password)
	} else {
		u.User = url.User(n.User)
	}
	return &u
}

// Cluster is a primary and its standbys, as a provider built them. It is
// also the local provider's state file, so it carries what a later process
// needs to inspect or remove the cluster.
type Cluster struct {
	SchemaVersion int       `json:"schema_version"`
	Name          string    `json:"name"`
	Provider      string    `json:"provider"`
	Status        string    `json:"status"` // building | ready
	OwnerPID      int       `json:"owner_pid"`
	CreatedAt     time.Time `json:"created_at"`
	ServerVersion string    `json:"server_version,omitempty"`
	Topology      Topology  `json:"topology"`
	Fast          bool      `json:"fast"`
	Settings      []Setting `json:"settings,omitempty"`
	// Sync is the primary's synchronous_standby_names ("" when
	// asynchronous); a failover gives the new primary its remapped rule.
	Sync string `json:"sync,omitempty"`

	Primary  Node   `json:"primary"`
	Standbys []Node `json:"standbys"`
	// Detached nodes are no longer part of replication (the old primary
	// after a failover: stopped, killed, frozen or even still running).
	// They serve nothing, but Down stops and removes them with the rest.
	Detached []Node `json:"detached,omitempty"`

	// Local provider only.
	PgBin        string `json:"pg_bin,omitempty"`
	OSUser       string `json:"os_user,omitempty"`
	UID          int    `json:"uid,omitempty"`
	GID          int    `json:"gid,omitempty"`
	BaseDir      string `json:"base_dir,omitempty"`
	SocketDir    string `json:"socket_dir,omitempty"`
	ReplUser     string `json:"repl_user,omitempty"`
	ReplPassword string `json:"repl_password,omitempty"`
	// AdminUser is the superuser pgbenchx manages nodes as, over the
	// socket by peer identity; empty for envs built before it existed
	// (they let postgres in that way).
	AdminUser string `json:"admin_user,omitempty"`
	// Image is what the nodes' containers run, Owner the label that marks
	// them as this user's and state folder's (docker provider only).
	Image string `json:"image,omitempty"`
	Owner string `json:"owner,omitempty"`
	// NetProxy is the process serving the standbys' slow links (nil
	// without --net-delay / --net-bandwidth); Down stops it.
	NetProxy *NetProxy `json:"net_proxy,omitempty"`
	// Proxies are the proxies the env runs (env up --proxy, and a
	// Patroni stack's HAProxy); Down stops them.
	Proxies []*Proxy `json:"proxies,omitempty"`
	// Stack is "patroni" when Patroni runs the cluster (Patroni says
	// what each node is); its processes are in Patroni.
	Stack   string        `json:"stack,omitempty"`
	Patroni *PatroniStack `json:"patroni,omitempty"`

	// stateDir is the Store the cluster was loaded from or saved to, so a
	// provider found by ProviderOf, and its Controller, save it there.
	stateDir string
}

const (
	statusBuilding = "building"
	statusReady    = "ready"
	stateSchema    = 1
)

// Nodes lists the nodes in service: the primary then the standbys in
// order. After a failover the primary may be named "standby1": go by
// Role (or c.Primary), never by name.
func (c *Cluster) Nodes() []*Node {
	out := []*Node{&c.Primary}
	for i := range c.Standbys {
		out = append(out, &c.Standbys[i])
	}
	return out
}

// AllNodes lists the nodes in service, then the detached ones.
func (c *Cluster) AllNodes() []*Node {
	out := c.Nodes()
	for i := range c.Detached {
		out = append(out, &c.Detached[i])
	}
	return out
}

// Node finds a node by name, detached nodes included. An unknown name is
// bad input for --node.
func (c *Cluster) Node(name string) (*Node, error) {
	for _, n := range c.AllNodes() {
		if n.Name == name {
			return n, nil
		}
	}
	names := ""
	for i, n := range c.AllNodes() {
		if i > 0 {
			names += ", "
		}
		names += n.Name
	}
	return nil, input.Bad("node", name, "env %q has %s", c.Name, names)
}

// ApplyDelays returns the apply delay of every delayed standby.
func (c *Cluster) ApplyDelays() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, s := range c.Standbys {
		if s.ApplyDelay > 0 {
			out[s.Name] = s.ApplyDelay
		}
	}
	return out
}

func (c *Cluster) String() string {
	return fmt.Sprintf("env %q (%s, %d standbys, %s)", c.Name, c.Provider, len(c.Standbys), c.Topology)
}
