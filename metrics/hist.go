package metrics

import (
	"encoding/json"
	"fmt"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency histograms record microseconds from 1 us to one hour with 3
// significant digits: the range and precision the design fixes, so every
// run's histograms can be merged with every other's (schema 1 files, whose
// ceiling was 60 s, merge into these exactly).
const (
	LowestUS  = 1
	HighestUS = 3_600_000_000
	SigFigs   = 3
)

// NewHist returns an empty latency histogram.
func NewHist() *Hist { return &Hist{hdrhistogram.New(LowestUS, HighestUS, SigFigs)} }

// Hist is an HDR histogram of microseconds that stores itself in JSON as
// the compressed, base64 HdrHistogram V2 encoding (the format every HDR
// implementation reads), so runs can be re-rendered and merged exactly.
type Hist struct{ *hdrhistogram.Histogram }

// RecordUS records one value, clamped into the histogram's range: a read
// slower than an hour is counted as an hour rather than dropped, and
// RecordUS says so, so the caller can count what was clipped.
func (h *Hist) RecordUS(us int64) (clipped bool) {
	if us < LowestUS {
		us = LowestUS
	} else if us > HighestUS {
		us, clipped = HighestUS, true
	}
	_ = h.RecordValue(us)
	return clipped
}

// Add merges o into h exactly (counts add up).
func (h *Hist) Add(o *Hist) {
	if o != nil && o.Histogram != nil {
		h.Merge(o.Histogram)
	}
}

// MarshalJSON writes the compressed encoding.
func (h *Hist) MarshalJSON() ([]byte, error) {
	if h == nil || h.Histogram == nil {
		return []byte("null"), nil
	}
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return nil, err
	}
	return json.Marshal(string(b))
}

// UnmarshalJSON reads the compressed encoding.
func (h *Hist) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s == "" {
		return nil
	}
	d, err := hdrhistogram.Decode([]byte(s))
	if err != nil {
		return fmt.Errorf("histogram: %w", err)
	}
	h.Histogram = d
	return nil
}

// Summary is what reports print of a histogram, in milliseconds.
type Summary struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// Summary computes percentiles from the histogram itself, never from
// other percentiles.
func (h *Hist) Summary() Summary {
	if h == nil || h.Histogram == nil || h.TotalCount() == 0 {
		return Summary{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Summary{
		Count: h.TotalCount(),
		Mean:  h.Mean() / 1000,
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
	}
}
