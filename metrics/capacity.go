package metrics

import "time"

// CapacitySchemaVersion of capacity.json; bump when a field changes meaning.
const CapacitySchemaVersion = 1

// Capacity is what pgbenchx capacity found: for each standby count and
// strategy, the highest open-loop rate whose measured window met the SLO.
// Every step measured is kept, so the knee can be drawn and checked.
type Capacity struct {
	Schema    int       `json:"schema"`
	Tool      string    `json:"tool"`
	Version   string    `json:"version"`
	Command   []string  `json:"command,omitempty"` // argv, passwords redacted
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	// SLO is the condition a step had to meet, as given ("p99<5ms").
	SLO string `json:"slo"`
	// Precision is the bisection's stopping width, relative to the rate
	// found (0.05: the capacity is known to within 5%).
	Precision    float64        `json:"precision"`
	StepDuration Duration       `json:"step_duration"`
	StepWarmup   Duration       `json:"step_warmup"`
	Clients      int            `json:"clients"`
	Mix          map[string]int `json:"mix,omitempty"`
	QueryFile    string         `json:"query_file,omitempty"`
	// CPUCaps is the quota each node ran under, in cores ("" / nil: none).
	CPUCaps map[string]float64 `json:"cpu_caps,omitempty"`
	// Cores is the host's cores; Colocated says the load generator shared
	// them with the servers (every local env): an uncapped search then
	// finds the host's limit as much as the cluster's.
	Cores       int              `json:"cores"`
	Colocated   bool             `json:"colocated"`
	Series      []CapacitySeries `json:"series"`
	Warnings    []string         `json:"warnings,omitempty"`
	Interrupted bool             `json:"interrupted,omitempty"`
}

// CapacitySeries is one search: one standby count, one strategy.
type CapacitySeries struct {
	Standbys int    `json:"standbys"`
	Strategy string `json:"strategy"`
	// Found: some step met the SLO. Capacity is the highest offered rate
	// that did (reads/s); Limit the lowest that did not (0: none failed,
	// the search stopped at its ceiling).
	Found    bool    `json:"found"`
	Capacity float64 `json:"capacity"`
	Limit    float64 `json:"limit,omitempty"`
	// Achieved is the reads/s measured at the Capacity step.
	Achieved float64        `json:"achieved"`
	Steps    []CapacityStep `json:"steps"`
	// Error is why the search stopped early, if it did.
	Error string `json:"error,omitempty"`
}

// CapacityStep is one measured rate.
type CapacityStep struct {
	Phase    string  `json:"phase"` // ramp or bisect
	Rate     float64 `json:"rate"`  // offered reads/s
	Achieved float64 `json:"achieved"`
	P50MS    float64 `json:"p50_ms"`
	P90MS    float64 `json:"p90_ms"`
	P99MS    float64 `json:"p99_ms"`
	P999MS   float64 `json:"p999_ms"`
	// ErrorPct is failed attempts of all attempts (as an errors<X% SLO
	// judges it); StalePct stale reads of those checked (-1: none was).
	ErrorPct float64 `json:"error_pct"`
	StalePct float64 `json:"stale_pct"`
	// ScheduleLagP99MS says how late the generator was: a step where it
	// could not keep the schedule measured the generator, not the cluster.
	ScheduleLagP99MS float64 `json:"schedule_lag_p99_ms"`
	Pass             bool    `json:"pass"`
	// Failed names the SLO conditions the step broke ("p99 7.1ms >= 5ms").
	Failed []string `json:"failed,omitempty"`
	// ThrottledSec is each capped node's throttled time in the step.
	ThrottledSec map[string]float64 `json:"throttled_sec,omitempty"`
	Run          string             `json:"run,omitempty"` // the step's run folder, if kept
}
