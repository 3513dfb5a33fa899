package routing

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/input"
)

// checkInputError fails unless err is a one-line *input.Error for flag.
func checkInputError(t *testing.T, err error, flag string) {
	t.Helper()
	var ie *input.Error
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v (%T), want *input.Error", err, err)
	}
	msg := err.Error()
	if ie.Flag != flag || !strings.HasPrefix(msg, "--"+flag+" ") && !strings.HasPrefix(msg, "--"+flag+":") {
		t.Errorf("error %q does not name --%s", msg, flag)
	}
	if strings.ContainsAny(msg, "\n\r") || !strings.Contains(msg, "accepted: ") {
		t.Errorf("error %q: want one line saying what is accepted", msg)
	}
}

func TestParseStrategies(t *testing.T) {
	tests := []struct {
		in   string
		want []Strategy // nil: error
	}{
		{"all", All},
		{" ALL ", All},
		{"round-robin,lag-aware", []Strategy{RoundRobin, LagAware}},
		{" causal , random ", []Strategy{Causal, Random}},
		{"least-conn", []Strategy{LeastConn}},
		{"ring", nil},
		{"random,ring", nil},
		{"random,random", nil},
		{"random, Random", nil},
		{"", nil},
		{"  ", nil},
		{"random,", nil},
		{"all,random", nil},
		{"round-robin,via:pgpool,via:haproxy", []Strategy{RoundRobin, Via("pgpool"), Via("haproxy")}},
		{"via:", nil},
		{"via:Has Space", nil},
		{"via:pgpool,via:pgpool", nil},
	}
	for _, tt := range tests {
		got, err := ParseStrategies(tt.in)
		if tt.want == nil {
			if err == nil {
				t.Errorf("ParseStrategies(%q) = %v, want an error", tt.in, got)
				continue
			}
			checkInputError(t, err, "strategies")
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseStrategies(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	got, _ := ParseStrategies("all")
	got[0] = "changed"
	if All[0] != Random {
		t.Error(`ParseStrategies("all") returned All itself: callers can change it`)
	}
}

func TestInputErrorMessage(t *testing.T) {
	_, err := ParseStrategies("ring")
	want := "--strategies ring: accepted: random, round-robin, least-conn, lag-aware, causal, nearest, all, or via:NAME (reads through a proxy: an env's pgpool or haproxy, or run --via NAME=DSN)"
	if err == nil || err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	_, _, err = ParseMaxLag("1MB,2MB")
	want = "--max-lag 1MB,2MB: two sizes; " + acceptedMaxLag
	if err == nil || err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	e := &input.Error{Flag: "weights", Value: "a\nb", Reason: "line\nbreak", Accepted: "accepted: x"}
	if got := e.Error(); got != `--weights "a\nb": line break; accepted: x` {
		t.Errorf("got %q: a value with a newline must stay on one line", got)
	}
}

func TestParseFallback(t *testing.T) {
	for in, want := range map[string]Fallback{
		"primary": FallbackPrimary, " Least-Lagged ": FallbackLeastLagged, "error": FallbackError,
	} {
		if got, err := ParseFallback(in); err != nil || got != want {
			t.Errorf("ParseFallback(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "standby", "least lagged"} {
		_, err := ParseFallback(in)
		checkInputError(t, err, "lag-fallback")
	}
}

func TestParseMaxLag(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		in    string
		bytes int64
		d     time.Duration
	}{
		{"1MB,500ms", 1 << 20, 500 * ms},
		{"1MB", 1 << 20, 0},
		{"500ms", 0, 500 * ms},
		{"64kB", 64 << 10, 0},
		{"2GB", 2 << 30, 0},
		{"1s,1MB", 1 << 20, time.Second},
		{"1048576B", 1 << 20, 0},
		{"64kb", 64 << 10, 0},
		{"64KB", 64 << 10, 0},
		{"1mb", 1 << 20, 0},
		{"1.5MB", 3 << 19, 0},
		{" 1 MB , 2s ", 1 << 20, 2 * time.Second},
		{"1MiB", 1 << 20, 0},
		{"1m30s", 0, 90 * time.Second},
	}
	for _, tt := range tests {
		b, d, err := ParseMaxLag(tt.in)
		if err != nil || b != tt.bytes || d != tt.d {
			t.Errorf("ParseMaxLag(%q) = %d, %v, %v; want %d, %v", tt.in, b, d, err, tt.bytes, tt.d)
		}
	}
	for _, in := range []string{
		"", "fast", "1MB,2MB", "1s,2s", "1MB,1s,2GB", "1MB,", "500", "1M", "0MB", "0s", "-1MB", "-5ms",
		"MB", "1.2.3MB", "9999999999GB", "1XB", "500MS",
	} {
		b, d, err := ParseMaxLag(in)
		if err == nil {
			t.Errorf("ParseMaxLag(%q) = %d, %v; want an error", in, b, d)
			continue
		}
		checkInputError(t, err, "max-lag")
	}
}

func TestParseWeights(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]float64
	}{
		{"standby1=2,standby2=1", map[string]float64{"standby1": 2, "standby2": 1}},
		{" standby1 = 0.5 , standby2=0", map[string]float64{"standby1": .5, "standby2": 0}},
		{"primary=1", map[string]float64{"primary": 1}},
	}
	for _, tt := range tests {
		got, err := ParseWeights(tt.in)
		if err != nil || !maps.Equal(got, tt.want) {
			t.Errorf("ParseWeights(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{
		"", "standby1", "standby1=", "=2", "standby1=-1", "standby1=x", "standby1=NaN", "standby1=Inf",
		"standby1=0,standby2=0", "standby1=1,standby1=2", "standby1=1,,standby2=1",
	} {
		got, err := ParseWeights(in)
		if err == nil {
			t.Errorf("ParseWeights(%q) = %v, want an error", in, got)
			continue
		}
		checkInputError(t, err, "weights")
	}
}
