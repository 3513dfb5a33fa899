package env

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Patroni's timing for a lab (bootstrap.dcs, so every member shares it).
// Patroni's defaults (ttl 30, loop_wait 10, retry_timeout 10) make a
// failover take 20-30 s; a lab wants it in seconds. A dead leader is
// replaced once its leader key expires: up to ttl after its last refresh,
// so the election takes ~ttl-loop_wait..ttl plus a promotion. Patroni's
// docs ask for loop_wait + 2*retry_timeout <= ttl: 1 + 2*4 = 9 <= 10.
// Lower still (ttl 5) would fail over faster, but a benchmark that
// saturates this machine's CPUs could then delay a leader's refresh past
// its ttl and cause the very failovers it measures.
const (
	patroniTTL          = 10
	patroniLoopWait     = 1
	patroniRetryTimeout = 4
	// patroniReadLag is the most a replica may lag behind the leader and
	// still take reads from the HAProxy read port (GET /replica?lag=).
	// Patroni compares with the leader's WAL position as it last wrote it
	// to the DCS (every loop_wait), so it is up to 1 s stale here.
	patroniReadLag = "1MB"
	// patroniNamespace is Patroni's default DCS namespace: its keys are
	// <namespace><scope>/leader, /initialize, /members/<name>, ...
	patroniNamespace = "/service/"
)

// patroniScope is the Patroni cluster's name (its DCS prefix). Patroni
// also makes it every node's cluster_name: it overrides ours (gotcha:
// postgresql.parameters.cluster_name is ignored; application_name in
// primary_conninfo is the member name, so pg_stat_replication still
// tells standbys apart by node name).
func patroniScope(c *Cluster) string { return "pgbx-" + c.Name }

// patroniMemberDir holds a member's patroni.yml and its password file:
// one folder per member, so that a path under it in a process's command
// line tells that member's Patroni apart (see stackAlive).
func patroniMemberDir(c *Cluster, name string) string {
	return filepath.Join(c.BaseDir, "patroni", name)
}

func patroniConfigPath(c *Cluster, name string) string {
	return filepath.Join(patroniMemberDir(c, name), "patroni.yml")
}

// patroniEnvParameters are the env's usual settings (build.go's
// writeConfig), global in the DCS: Patroni takes the settings it passes
// on postgres' command line (wal_level, max_wal_senders,
// max_replication_slots, hot_standby, wal_log_hints, max_connections...)
// only from there, ignoring a member's local value, and the user's
// --pg-setting may be one of them.
func patroniEnvParameters(c *Cluster) map[string]string {
	senders := strconv.Itoa(len(c.Standbys) + 10)
	p := map[string]string{
		"wal_level":              "replica",
		"max_wal_senders":        senders,
		"max_replication_slots":  senders,
		"hot_standby":            "on",
		"wal_log_hints":          "on", // pg_rewind, which Patroni uses on a rejoining old leader
		"max_slot_wal_keep_size": "8GB",
		// A new member starts streaming before the leader's Patroni has
		// made its slot (the leader does it in its next HA loop, once the
		// member registered): "replication slot "standby1" does not
		// exist", and the walreceiver tries again only after this
		// interval, 5 s by default: measured here, it made up 5 s of a
		// 10 s env up. Also how soon a standby retries its new leader
		// after a failover.
		"wal_retrieve_retry_interval": "200ms",
	}
	if c.Fast {
		p["fsync"] = "off"
	}
	for _, s := range c.Settings {
		p[s.Key] = s.Value
	}
	return p
}

// patroniHBA is build.go's pg_hba.conf as Patroni's list (Patroni writes
// pg_hba.conf on every start of every member, so it must hold all of it):
// TCP from loopback only, scram everywhere, and the env's admin role over
// the socket by peer identity.
func patroniHBA(c *Cluster) []string {
	return []string{
		"local all " + adminUser + " peer map=pgbx",
		"local all all scram-sha-256",
		"host all all 127.0.0.1/32 scram-sha-256",
		"host replication " + c.ReplUser + " 127.0.0.1/32 scram-sha-256",
	}
}

func patroniIdent(c *Cluster) []string {
	out := []string{"pgbx " + c.OSUser + " " + adminUser}
	if me := currentUserName(); me != c.OSUser {
		out = append(out, "pgbx "+me+" "+adminUser)
	}
	return out
}

// patroniConfig is one member's patroni.yml. It is written as JSON, which
// YAML (Patroni's yaml.safe_load) reads as it is: no YAML library, no
// quoting rules of our own.
func patroniConfig(c *Cluster, n *Node, restPort int) map[string]any {
	hostPort := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	dir := patroniMemberDir(c, n.Name)
	return map[string]any{
		"scope":     patroniScope(c),
		"namespace": patroniNamespace,
		"name":      n.Name,
		"restapi": map[string]any{
			"listen":          hostPort(restPort),
			"connect_address": hostPort(restPort),
		},
		"etcd3": map[string]any{"hosts": []string{hostPort(c.Patroni.EtcdPort)}, "protocol": "http"},
		"bootstrap": map[string]any{
			"dcs": map[string]any{
				"ttl":                     patroniTTL,
				"loop_wait":               patroniLoopWait,
				"retry_timeout":           patroniRetryTimeout,
				"maximum_lag_on_failover": 1 << 20,
				"postgresql": map[string]any{
					"use_pg_rewind": true,
					"use_slots":     true,
					"parameters":    patroniEnvParameters(c),
				},
			},
			// As our template's initdb (template.go), plus scram: Patroni
			// gives the superuser its password with --pwfile.
			"initdb": []any{
				map[string]string{"encoding": "UTF8"},
				"no-locale",
				map[string]string{"auth-local": "peer"},
				map[string]string{"auth-host": "scram-sha-256"},
			},
		},
		"postgresql": map[string]any{
			"listen":          hostPort(n.Port),
			"connect_address": hostPort(n.Port),
			"data_dir":        n.DataDir,
			"bin_dir":         c.PgBin,
			"pgpass":          filepath.Join(dir, "pgpass"),
			// Patroni's own connections go through the socket (still with
			// the superuser's password: pg_hba says scram).
			"use_unix_socket": true,
			"authentication": map[string]any{
				"superuser":   map[string]string{"username": n.User, "password": c.Primary.Password},
				"replication": map[string]string{"username": c.ReplUser, "password": c.ReplPassword},
			},
			"parameters": map[string]string{
				"unix_socket_directories": c.SocketDir,
				// The server's own log file, where the env's other nodes
				// keep theirs: postgres' stderr is Patroni's (it starts
				// the postmaster), so without the collector its lines
				// would be mixed into Patroni's log.
				"logging_collector": "on",
				"log_directory":     filepath.Dir(n.LogFile),
				"log_filename":      filepath.Base(n.LogFile),
				"log_file_mode":     "0600",
				"log_rotation_age":  "0",
				"log_rotation_size": "0",
			},
			"pg_hba":   patroniHBA(c),
			"pg_ident": patroniIdent(c),
			// pg_basebackup's default checkpoint is spread: a new
			// member would wait for it (seconds) before copying a byte.
			"basebackup": []any{map[string]string{"checkpoint": "fast"}},
		},
		// No watchdog device on a lab machine; "automatic" would only warn.
		"watchdog": map[string]any{"mode": "off"},
		"tags":     map[string]any{"nofailover": false, "noloadbalance": false, "clonefrom": false, "nosync": false},
	}
}

// writePatroniConfig writes a member's patroni.yml, readable by the
// servers' OS user only: it holds the env's passwords.
func writePatroniConfig(c *Cluster, u osUser, n *Node, restPort int) (string, error) {
	dir := patroniMemberDir(c, n.Name)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("%s: patroni folder: %w", n.Name, err)
	}
	if err := u.mkdir(dir); err != nil {
		return "", fmt.Errorf("%s: patroni folder: %w", n.Name, err)
	}
	b, err := json.MarshalIndent(patroniConfig(c, n, restPort), "", "  ")
	if err != nil {
		return "", err
	}
	path := patroniConfigPath(c, n.Name)
	if err := writeOwned(u, path, append(b, '\n')); err != nil {
		return "", fmt.Errorf("%s: patroni.yml: %w", n.Name, err)
	}
	return path, nil
}

// writeOwned writes a file of mode 0600 owned by the servers' OS user.
func writeOwned(u osUser, path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return u.chown(path)
}
