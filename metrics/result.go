package metrics

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// SchemaVersion of run.json. Bump it when a field changes meaning; readers
// refuse versions they do not know rather than misreport them.
// Schema 2 (issue 7): per-node latency covers every attempt (failed ones in
// FailedLatency), an end-to-end histogram per strategy, error labels by
// SQLSTATE, failed reads, measured window, time-lag bounds. Schema 1 files
// still load: what they lack is unknown, never zero.
const SchemaVersion = 2

// oldestSchema is the oldest run.json this pgbenchx still reads.
const oldestSchema = 1

// Result is everything a run leaves behind: what report renders, and what
// compare and merge read back. Passwords never enter it (DSNs are redacted
// before they get here).
type Result struct {
	Schema int    `json:"schema"`
	Tool   string `json:"tool"`
	// Version is the pgbenchx that made the run; Command its command
	// line (argv, passwords redacted): how to make it again.
	Version     string            `json:"version,omitempty"`
	Command     []string          `json:"command,omitempty"`
	Label       string            `json:"label"`
	StartedAt   time.Time         `json:"started_at"`
	EndedAt     time.Time         `json:"ended_at"`
	Interrupted bool              `json:"interrupted,omitempty"`
	Config      Config            `json:"config"`
	Environment Environment       `json:"environment"`
	Write       *WritePhase       `json:"write_phase,omitempty"`
	Strategies  []*StrategyResult `json:"strategies"`
	// Events outside every read phase (during the write phase, between
	// strategies); those inside one are the strategy's.
	Events []Event `json:"events,omitempty"`
	// Durability is what became of the writes the primary acknowledged,
	// across failovers. Nil when the run wrote nothing of its own.
	Durability *Durability `json:"durability,omitempty"`
	// Failovers are the failovers the run injected, as the env did them.
	Failovers []Failover `json:"failovers,omitempty"`
	Warnings  []string   `json:"warnings,omitempty"`
	// Phases are when each phase of the run began, wall clock: a run's
	// seconds line up with dashboards.
	Phases []PhaseStart `json:"phases,omitempty"`
}

// ScriptInfo is one pgbench script a run's reads ran (-f FILE@WEIGHT):
// its name (the file's stem), where it was read from, its weight, and
// its text with a hash, so a run can be made again and merge can tell
// the same script at another path from another script.
type ScriptInfo struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	Weight int    `json:"weight"`
	SHA256 string `json:"sha256"`
	Text   string `json:"text"`
}

// PhaseStart is a phase of a run and when it began: schema, write,
// settle, start_at, read <strategy> (its warmup), measure <strategy>.
type PhaseStart struct {
	Name   string    `json:"name"`
	At     time.Time `json:"at"`
	Detail string    `json:"detail,omitempty"`
}

// Failover is one failover as the env did it: the old primary killed,
// a standby promoted, every other standby made to follow it.
type Failover struct {
	At         time.Time `json:"at"`
	OldPrimary string    `json:"old_primary"`
	NewPrimary string    `json:"new_primary"`
	// PromoteMS is how long the promoted standby took to leave recovery.
	PromoteMS float64    `json:"promote_ms"`
	Followers []Follower `json:"followers,omitempty"`
	// AllStreamingMS is from the kill until every remaining standby
	// streamed from the new primary; -1 when one never did.
	AllStreamingMS float64 `json:"all_streaming_ms"`
	// SynchronousStandbyNames is the rule the new primary was given (the
	// old one's with the promoted node replaced), empty when none.
	SynchronousStandbyNames string `json:"synchronous_standby_names,omitempty"`
}

// Follower is a remaining standby after a failover: how it came to follow
// the new primary (repointed, rewound, rebuilt, followed as a cascade) and
// when it streamed again, ms after the kill (-1: never; Error says why).
type Follower struct {
	Node        string  `json:"node"`
	How         string  `json:"how"`
	StreamingMS float64 `json:"streaming_ms"`
	Error       string  `json:"error,omitempty"`
}

// Durability is what became of acknowledged writes: the rows the
// background writer and the clients' session writes saw committed, how
// many of them the primary at the end of the run holds, and each time
// writes moved to another primary.
type Durability struct {
	AcknowledgedRows int64    `json:"acknowledged_rows"`
	RowsLost         int64    `json:"rows_lost"`
	CheckedOn        string   `json:"checked_on"` // the node counted: the primary at the end
	Outages          []Outage `json:"outages,omitempty"`
}

// Outage is a change of primary as the writers saw it: writes were
// unavailable from the last commit the old primary acknowledged to the
// first the new one did.
type Outage struct {
	OldPrimary string    `json:"old_primary"`
	NewPrimary string    `json:"new_primary"`
	LastAck    time.Time `json:"last_ack,omitzero"`
	FirstAck   time.Time `json:"first_ack,omitzero"` // zero: none within a minute
	Seconds    float64   `json:"seconds"`            // write unavailability; 0 when not measured
}

// Event is something that happened to the cluster while it was measured:
// a fault injected, a failover, a node that came back. The scenario is
// told of it by whoever caused or saw it.
type Event struct {
	At time.Time `json:"at"`
	// T is seconds since the measured start of the read phase the event
	// fell in (negative: during its warmup); 0 outside read phases.
	T      float64 `json:"t"`
	Kind   string  `json:"kind"` // e.g. kill, stop, restart, freeze, thaw, failover
	Node   string  `json:"node,omitempty"`
	Detail string  `json:"detail,omitempty"`
}

// String is how reports name an event: "kill standby2".
func (e Event) String() string {
	s := e.Kind
	if e.Node != "" {
		s += " " + e.Node
	}
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

// Config is the run's configuration as the user gave it.
type Config struct {
	Strategies []string       `json:"strategies"`
	Duration   Duration       `json:"duration"`
	Warmup     Duration       `json:"warmup"`
	Clients    int            `json:"clients"`
	Rate       float64        `json:"rate"` // 0 = closed loop
	Mix        map[string]int `json:"mix"`
	QueryFile  string         `json:"query_file,omitempty"`
	// QueryFileSHA256 identifies the query file's contents.
	QueryFileSHA256 string             `json:"query_file_sha256,omitempty"`
	Scale           int                `json:"scale"`
	WriteRows       int                `json:"write_rows"`
	WriteBatch      int                `json:"write_batch"`
	WriteRate       float64            `json:"write_rate"` // background rows/s on the primary during the read phases
	MaxLagBytes     int64              `json:"max_lag_bytes,omitempty"`
	MaxLagTime      Duration           `json:"max_lag_time,omitempty"`
	LagFallback     string             `json:"lag_fallback,omitempty"`
	Weights         map[string]float64 `json:"weights,omitempty"`
	ReadPrimary     bool               `json:"read_primary"`
	MaxTries        int                `json:"max_tries"`
	EjectFor        Duration           `json:"eject_for"`
	LagInterval     Duration           `json:"lag_interval"`
	QueryTimeout    Duration           `json:"query_timeout,omitempty"`
	Heartbeat       Duration           `json:"heartbeat_interval"`
	StaleSample     int                `json:"stale_sample_every"`       // 1 = every read checks staleness
	SessionWrites   int                `json:"session_writes,omitempty"` // each client writes a row every N ops and reads it back next
	// Commit is the writers' synchronous_commit; empty: the server's.
	Commit string `json:"synchronous_commit,omitempty"`
	// StartAt is run --start-at: when the first read phase was to begin.
	StartAt time.Time `json:"start_at,omitzero"`
	// Mode is the replication mode a matrix compared this run under, as
	// it asked for it ("sync ANY 1 (standby1, standby2), commit on"): a
	// cell with fewer standbys ran the rule without the ones it lacks.
	Mode string `json:"mode,omitempty"`
	// SlotWarnBytes is --slot-warn: a slot keeping more WAL is warned of.
	SlotWarnBytes int64 `json:"slot_warn_bytes,omitempty"`
	// Scripts are the pgbench scripts (-f) the reads ran, each a query
	// kind named by its file's stem.
	Scripts []ScriptInfo `json:"scripts,omitempty"`
	// ViaProtocol is how via: reads were sent when not as Protocol.
	ViaProtocol string `json:"via_protocol,omitempty"`
	// Vias are the endpoints via:NAME strategies read through, by name
	// (DSN, password redacted).
	Vias map[string]string `json:"vias,omitempty"`
	// Protocol is how reads were sent (prepared, extended, simple);
	// empty in files from before it could be chosen: prepared.
	Protocol string `json:"protocol,omitempty"`
	// Faults are the faults injected, AT:ACTION:NODE.
	Faults []string `json:"faults,omitempty"`
}

// Environment describes the cluster measured.
type Environment struct {
	Provider      string            `json:"provider"` // local | external
	Name          string            `json:"name,omitempty"`
	ServerVersion string            `json:"server_version"`
	Standbys      int               `json:"standbys"`
	Topology      string            `json:"topology,omitempty"`
	ApplyDelays   map[string]string `json:"apply_delays,omitempty"`
	Fast          bool              `json:"fast"`
	Cores         int               `json:"cores"`
	Host          string            `json:"host,omitempty"`
	Nodes         []NodeInfo        `json:"nodes"`
	// CPUCaps is each capped node's CPU quota in cores (env up --cpus).
	CPUCaps map[string]float64 `json:"cpu_caps,omitempty"`
	// MemoryCaps is each capped node's memory limit in bytes (env up
	// --memory, docker provider).
	MemoryCaps map[string]int64 `json:"memory_caps,omitempty"`
	// Settings are the postgresql.conf settings the env applied to every
	// node (env up --pg-setting), key=value.
	Settings []string `json:"settings,omitempty"`
	// NetLinks are the slow links standbys sat behind (env up
	// --net-delay, --net-bandwidth), by node: "+30ms round trip".
	NetLinks map[string]string `json:"net_links,omitempty"`
	// UnixSocket: the load generator reached the nodes through their Unix
	// sockets (run --socket), not TCP.
	UnixSocket bool `json:"unix_socket,omitempty"`
	// Proxies are the proxies the env ran in front of its nodes, each
	// described ("pgpool-II 4.3.5 on 127.0.0.1:9999, statement-level load
	// balancing, delay_threshold 1MB"); Stack is "patroni" when Patroni
	// ran the cluster.
	Proxies map[string]string `json:"proxies,omitempty"`
	Stack   string            `json:"stack,omitempty"`
	// SynchronousStandbyNames is the primary's synchronous_standby_names
	// when the run began (empty: asynchronous replication).
	SynchronousStandbyNames string `json:"synchronous_standby_names,omitempty"`
}

// StandbyCost is one standby's cost to the primary: the WAL sent to it
// (deltas of pg_stat_replication.sent_lsn) and its walsender's CPU, where
// the walsender's process can be seen from here (-1 when it cannot).
type StandbyCost struct {
	Node           string  `json:"node"`
	WALBytesPerSec float64 `json:"wal_bytes_per_sec"`
	WalsenderCores float64 `json:"walsender_cores"`
}

// Role is what a node is in its cluster; the workload asks each server
// (pg_is_in_recovery) rather than trusting a position or a name.
type Role string

// The roles.
const (
	RolePrimary Role = "primary"
	RoleStandby Role = "standby"
	// RoleUnknown is the row of via:NAME reads whose serving node could
	// not be told (a query file's or script's reads, a failed try).
	RoleUnknown Role = "unknown"
)

// Unattributed is that row's node name.
const Unattributed = "unattributed"

// NodeInfo names a node and how it was reached (password redacted).
type NodeInfo struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	DSN  string `json:"dsn"`
	// Settings are the server settings that shape the figures
	// (shared_buffers, max_connections, synchronous_commit,
	// hot_standby_feedback, ...) as the node reported them at the start.
	Settings map[string]string `json:"settings,omitempty"`
}

// WritePhase is the bulk insert on the primary and how standbys kept up.
type WritePhase struct {
	Rows        int64            `json:"rows"`
	Batch       int              `json:"batch"`
	Seconds     float64          `json:"seconds"`
	RowsPerSec  float64          `json:"rows_per_sec"`
	Standbys    []CatchUp        `json:"standbys"`
	RowCounts   map[string]int64 `json:"row_counts"`
	CountsEqual bool             `json:"counts_equal"`
	Errors      int64            `json:"errors"`
	// CommitLatency holds every batch's commit, us.
	CommitLatency *Hist `json:"commit_latency_us,omitempty"`
}

// CatchUp is one standby's view of the write phase.
type CatchUp struct {
	Node         string  `json:"node"`
	CatchUpMS    float64 `json:"catch_up_ms"`    // last commit until its replay LSN reached that commit's LSN; -1 if never
	PeakLagBytes int64   `json:"peak_lag_bytes"` // -1: no known sample
	PeakLagMS    float64 `json:"peak_lag_ms"`    // -1: no known sample
}

// StrategyResult is one strategy's read phase.
type StrategyResult struct {
	Strategy string  `json:"strategy"`
	Seconds  float64 `json:"seconds"` // measured time, warmup excluded
	// MeasuredFrom and MeasuredTo bound the measured window on the load
	// generator's wall clock: merge needs them to tell whether runs of
	// several generators overlapped. Zero in schema 1 files.
	MeasuredFrom time.Time     `json:"measured_from,omitzero"`
	MeasuredTo   time.Time     `json:"measured_to,omitzero"`
	Nodes        []*NodeResult `json:"nodes"`
	// EndToEnd holds every read once, from its due time to its end: the
	// time of all its tries when retried, the latency it failed at when it
	// failed everywhere, the time reached when the phase ended under it,
	// and for open-loop slots never sent, the time they had waited at the
	// end. It is what the strategy's totals, charts and gates read. Nil in
	// schema 1 files (then the nodes' successful reads stand in).
	EndToEnd *Hist `json:"end_to_end_us,omitempty"`
	// Failed reads failed on every try (NoTarget included).
	Failed int64 `json:"failed"`
	// CommitLatency holds the commits of the writes made while this
	// strategy was measured (background batches, session writes), on the
	// primary: what synchronous replication costs shows here.
	CommitLatency *Hist       `json:"commit_latency_us,omitempty"`
	ScheduleLag   *Hist       `json:"schedule_lag,omitempty"` // open loop: start minus due, us
	Ticks         []Tick      `json:"ticks"`
	Lag           []LagSample `json:"lag"`
	RYWChecks     int64       `json:"ryw_checks,omitempty"`     // causal: reads of the client's own last write
	RYWViolation  int64       `json:"ryw_violations,omitempty"` // ... that did not find it
	CPU           CPU         `json:"cpu"`
	// PrimaryCost is what each standby cost the primary during the phase.
	PrimaryCost []StandbyCost `json:"primary_cost,omitempty"`
	// ThrottledSec is, per capped node, how long its CPU quota held it back
	// during the phase (cgroup cpu.stat).
	ThrottledSec     map[string]float64 `json:"throttled_sec,omitempty"`
	BackgroundWrites int64              `json:"background_writes"`
	// Unfinished reads were still running when the phase ended; they are
	// in the histograms (their node's and EndToEnd) with the latency they
	// had reached, and neither failed nor succeeded.
	Unfinished int64 `json:"unfinished,omitempty"`
	// Unsent open-loop reads fell due inside the measured window but were
	// never started; they are in EndToEnd only.
	Unsent int64 `json:"unsent,omitempty"`
	// NoTarget reads found no node to run on at all; they are failed reads
	// and count as errors of the strategy (on no node).
	NoTarget int64 `json:"no_target,omitempty"`
	// Clipped counts values over the histograms' one-hour ceiling,
	// recorded as an hour.
	Clipped int64 `json:"clipped,omitempty"`
	// Events are what happened to the cluster during this read phase.
	Events []Event `json:"events,omitempty"`
	// TimeLagResolution is the heartbeat interval: time lag is known to
	// within it (LagSample.MS to MSUpper).
	TimeLagResolution Duration `json:"time_lag_resolution,omitempty"`
}

// NodeResult is one node's share of a strategy's reads: every attempt
// that ran on it, once.
type NodeResult struct {
	Node  string           `json:"node"`
	Role  Role             `json:"role"`
	Kinds map[string]*Hist `json:"latency_us"` // successful attempts, per query kind
	// FailedLatency holds the attempts that failed here, at the latency
	// they failed (a client timeout at the timeout). Nil when none did.
	FailedLatency *Hist `json:"failed_latency_us,omitempty"`
	// Errors counts failed attempts by error label: "57014 query_canceled",
	// "53300 too_many_connections", "client_timeout", "connection_refused"
	// ... (schema 1: connection, conflict, timeout, query).
	Errors map[string]int64 `json:"errors,omitempty"`
	// ErrorSamples holds one message per error label, password-free.
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	// Retries are attempts that ran here because the read had failed on
	// another node first (schema 1: reads that failed here and were to be
	// retried elsewhere).
	Retries      int64 `json:"retries"`
	StaleReads   int64 `json:"stale_reads"`
	StaleChecked int64 `json:"stale_checked"`
}

// Tick is one second of a strategy's read phase.
type Tick struct {
	Second int `json:"second"`
	// At is the tick's wall-clock time (the end of its second), so a
	// run's seconds line up with dashboards.
	At      time.Time `json:"at,omitzero"`
	Queries int64     `json:"queries"` // successful reads
	Errors  int64     `json:"errors"`  // failed attempts and reads with no node to try
	Failed  int64     `json:"failed,omitempty"`
	// P50MS and P99MS are of the reads that ended this second, end to end
	// (failed ones too); 0 when none did.
	P50MS    float64            `json:"p50_ms"`
	P99MS    float64            `json:"p99_ms"`
	LagBytes map[string]int64   `json:"lag_bytes,omitempty"`
	LagMS    map[string]float64 `json:"lag_ms,omitempty"`
	// NodeQueries and NodeErrors are each node's successful attempts and
	// failed ones in this second: a node leaving and coming back shows.
	NodeQueries map[string]int64 `json:"node_queries,omitempty"`
	NodeErrors  map[string]int64 `json:"node_errors,omitempty"`
	// NodeStale is each node's stale reads this second (of the checked).
	NodeStale map[string]int64 `json:"node_stale,omitempty"`
	// SlotBytes is the WAL each standby's slot makes the primary keep
	// (its current LSN minus the slot's restart_lsn): it grows while a
	// standby is down, frozen or far behind.
	SlotBytes map[string]int64 `json:"slot_bytes,omitempty"`
}

// TickLag is the lag sampler's last round, as a tick records it; a
// standby absent from a map was unknown.
type TickLag struct {
	Bytes map[string]int64
	MS    map[string]float64
	Slots map[string]int64
}

// LagSample is one sample of one standby's lag.
type LagSample struct {
	T     float64 `json:"t"` // seconds since the phase began
	Node  string  `json:"node"`
	Bytes *int64  `json:"bytes"` // primary insert LSN minus standby replay LSN; nil = unknown
	// MS and MSUpper bound the heartbeat time lag: the standby was at
	// least MS and at most MSUpper behind when it answered (their gap is
	// about one heartbeat interval). nil = unknown; MSUpper is nil in
	// schema 1 files, whose MS is the lower bound.
	MS        *float64 `json:"ms"`
	MSUpper   *float64 `json:"ms_upper,omitempty"`
	PSRBytes  *int64   `json:"psr_bytes,omitempty"` // same, from the primary's pg_stat_replication.replay_lsn (cross-check)
	ReplayLag *float64 `json:"replay_lag_ms,omitempty"`
	// SlotBytes is the WAL the standby's slot makes the primary keep;
	// known whenever the primary answered, the standby down or not.
	SlotBytes *int64 `json:"slot_bytes,omitempty"`
}

// CPU is what the load generator and the host used during a phase.
type CPU struct {
	Cores         int     `json:"cores"`
	LoadGenCores  float64 `json:"loadgen_cores"`   // user+sys seconds of this process per second
	HostBusyCores float64 `json:"host_busy_cores"` // from /proc/stat, all processes
	LoadGenBound  bool    `json:"loadgen_bound"`
	HostSaturated bool    `json:"host_saturated"`
	// ServerCores approximates the servers' use: host busy minus the load
	// generator (other processes on the host count too).
	ServerCores float64 `json:"server_cores"`
}

// Duration is a time.Duration that reads and writes as "1.5s" in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// Total merges a node's successful attempts over every query kind.
func (n *NodeResult) Total() *Hist {
	h := NewHist()
	for _, k := range n.Kinds {
		h.Add(k)
	}
	return h
}

// Attempts merges every attempt that ran on the node, failed ones too:
// the latency a client saw from that node.
func (n *NodeResult) Attempts() *Hist {
	h := n.Total()
	h.Add(n.FailedLatency)
	return h
}

// ErrorCount sums errors over classes.
func (n *NodeResult) ErrorCount() int64 {
	var t int64
	for _, v := range n.Errors {
		t += v
	}
	return t
}

// Total merges every node's successful attempts.
func (s *StrategyResult) Total() *Hist {
	h := NewHist()
	for _, n := range s.Nodes {
		h.Add(n.Total())
	}
	return h
}

// Reads is the end-to-end histogram: every read once. Schema 1 files have
// none; their nodes' successful reads stand in.
func (s *StrategyResult) Reads() *Hist {
	if s.EndToEnd != nil && s.EndToEnd.Histogram != nil {
		return s.EndToEnd
	}
	return s.Total()
}

// Load reads a run.json.
func Load(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Schema < oldestSchema || r.Schema > SchemaVersion {
		return nil, fmt.Errorf("%s: schema %d, this pgbenchx reads schemas %d to %d", path, r.Schema, oldestSchema, SchemaVersion)
	}
	return &r, nil
}
