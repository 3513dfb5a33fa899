package routing

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgbenchx/pgbenchx/input"
)

const (
	acceptedStrategies = "accepted: random, round-robin, least-conn, lag-aware, causal, nearest, all, or via:NAME (reads through a proxy: an env's pgpool or haproxy, or run --via NAME=DSN)"
	acceptedFallbacks  = "accepted: primary, least-lagged or error"
	acceptedMaxLag     = "accepted: a size (64kB, 1MB, 2GB, 1048576B), a duration (500ms, 1s) or one of each, comma-separated (1MB,500ms)"
	acceptedWeights    = "accepted: name=weight pairs, comma-separated (standby1=2,standby2=1), weights >= 0, at least one > 0"
)

// ParseStrategies reads "all" or a comma-separated list of strategies
// ("round-robin,lag-aware"). Names are trimmed and case-insensitive.
func ParseStrategies(s string) ([]Strategy, error) {
	bad := func(reason string) error {
		return &input.Error{Flag: "strategies", Value: s, Reason: reason, Accepted: acceptedStrategies}
	}
	parts := strings.Split(s, ",")
	var out []Strategy
	for _, p := range parts {
		p = strings.ToLower(strings.TrimSpace(p))
		st := Strategy(p)
		switch {
		case p == "" && len(parts) == 1:
			return nil, bad("")
		case p == "":
			return nil, bad("empty item in the list")
		case p == "all" && len(parts) == 1:
			return slices.Clone(All), nil
		case p == "all":
			return nil, bad("all already names every strategy")
		case slices.Contains(out, st):
			return nil, bad(p + " is given twice")
		case strings.HasPrefix(p, ViaPrefix) && !ValidViaName(strings.TrimPrefix(p, ViaPrefix)):
			return nil, bad(input.Quote(p) + ": via:NAME takes a name of a-z, 0-9, '-' or '_'")
		case strings.HasPrefix(p, ViaPrefix):
		case !slices.Contains(All, st):
			if len(parts) == 1 {
				return nil, bad("")
			}
			return nil, bad(input.Quote(p) + " is not a strategy")
		case slices.Contains(out, st):
			return nil, bad(p + " is given twice")
		}
		out = append(out, st)
	}
	return out, nil
}

// Fallback is what lag-aware does when no standby is within --max-lag.
type Fallback string

// The fallbacks.
const (
	FallbackPrimary     Fallback = "primary"      // read from the primary
	FallbackLeastLagged Fallback = "least-lagged" // read from the standby with the smallest known byte lag
	FallbackError       Fallback = "error"        // fail the read with ErrNoTarget
)

// ParseFallback reads --lag-fallback.
func ParseFallback(s string) (Fallback, error) {
	f := Fallback(strings.ToLower(strings.TrimSpace(s)))
	switch f {
	case FallbackPrimary, FallbackLeastLagged, FallbackError:
		return f, nil
	}
	return "", &input.Error{Flag: "lag-fallback", Value: s, Accepted: acceptedFallbacks}
}

// ParseMaxLag reads --max-lag: a size, a duration or one of each in either
// order ("1MB,500ms", "1s,1MB", "64kB", "500ms"). Size units are B, kB, MB,
// GB and TB in any case, multiples of 1024 as in PostgreSQL settings; a
// bare number is refused, since "1M" or "500" could mean either kind.
// Durations use Go syntax. bytes = 0 means no byte limit, d = 0 no time limit.
func ParseMaxLag(s string) (bytes int64, d time.Duration, err error) {
	bad := func(reason string) (int64, time.Duration, error) {
		return 0, 0, &input.Error{Flag: "max-lag", Value: s, Reason: reason, Accepted: acceptedMaxLag}
	}
	parts := strings.Split(s, ",")
	if len(parts) > 2 {
		return bad("at most one size and one duration")
	}
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			if len(parts) == 1 {
				return bad("")
			}
			return bad("empty item in the list")
		}
		if n, isSize, reason := input.ParseSize(p); isSize {
			switch {
			case reason != "":
				return bad(reason)
			case bytes != 0:
				return bad("two sizes")
			}
			bytes = n
			continue
		}
		v, perr := time.ParseDuration(p)
		switch {
		case perr != nil:
			return bad(input.Quote(p) + " is neither a size nor a duration")
		case v <= 0:
			return bad(p + ": a limit must be > 0")
		case d != 0:
			return bad("two durations")
		}
		d = v
	}
	return bytes, d, nil
}

// ParseWeights reads --weights "standby1=2,standby2=1": non-negative
// numbers, at least one > 0. Whether the names are nodes is New's to check.
func ParseWeights(s string) (map[string]float64, error) {
	bad := func(reason string) (map[string]float64, error) {
		return nil, &input.Error{Flag: "weights", Value: s, Reason: reason, Accepted: acceptedWeights}
	}
	if strings.TrimSpace(s) == "" {
		return bad("")
	}
	out := map[string]float64{}
	positive := false
	for _, p := range strings.Split(s, ",") {
		name, val, found := strings.Cut(p, "=")
		name, val = strings.TrimSpace(name), strings.TrimSpace(val)
		if !found || name == "" {
			return bad(fmt.Sprintf("%s is not name=weight", input.Quote(strings.TrimSpace(p))))
		}
		w, err := strconv.ParseFloat(val, 64)
		if err != nil || !(w >= 0) || math.IsInf(w, 0) {
			return bad(fmt.Sprintf("weight of %s: %s is not a number >= 0", input.Quote(name), input.Quote(val)))
		}
		if _, dup := out[name]; dup {
			return bad(input.Quote(name) + " is given twice")
		}
		out[name] = w
		positive = positive || w > 0
	}
	if !positive {
		return bad("no weight is > 0")
	}
	return out, nil
}
