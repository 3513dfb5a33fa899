package metrics

import "time"

// SweepSchemaVersion of sweep.json; bump when a field changes meaning.
const SweepSchemaVersion = 1

// Sweep is a run repeated at several load levels on one cluster (run
// --clients 4,8,16 or --rate 2000,4000,8000): one point per strategy and
// level, each from its own run folder.
type Sweep struct {
	Schema    int       `json:"schema"`
	Tool      string    `json:"tool"`
	Version   string    `json:"version"`
	Command   []string  `json:"command,omitempty"` // argv, passwords redacted
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	// Dimension is what varies: "clients" (closed loop unless a single
	// --rate is given) or "rate" (open loop, reads/s over all clients).
	Dimension   string       `json:"dimension"`
	Levels      []float64    `json:"levels"`
	Points      []SweepPoint `json:"points"`
	Warnings    []string     `json:"warnings,omitempty"`
	Interrupted bool         `json:"interrupted,omitempty"`
}

// SweepPoint is one strategy at one level.
type SweepPoint struct {
	Strategy string  `json:"strategy"`
	Level    float64 `json:"level"`
	Clients  int     `json:"clients"`
	Rate     float64 `json:"rate"` // offered reads/s; 0 = closed loop
	// QPS is successful reads per measured second.
	QPS    float64 `json:"qps"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
	P99MS  float64 `json:"p99_ms"`
	P999MS float64 `json:"p999_ms"`
	// ErrorPct is failed attempts of all attempts (as errors<X% judges
	// it); StalePct stale of the checked
	// (-1: none checked, unknown).
	ErrorPct float64 `json:"error_pct"`
	StalePct float64 `json:"stale_pct"`
	// Run is the level's run folder, relative to the sweep's.
	Run string `json:"run,omitempty"`
}
