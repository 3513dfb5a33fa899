package input

import (
	"math"
	"strconv"
	"strings"
	"unicode"
)

// Quote quotes s when it is empty or holds spaces, quotes or unprintable
// characters, so an error names it unambiguously.
func Quote(s string) string {
	if s == "" || strings.IndexFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || !unicode.IsPrint(r) || r == '"'
	}) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

var sizeUnits = map[string]float64{
	"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// ParseSize reads "64kB" or "1.5 MB": units B, kB, MB, GB, TB (and KiB...)
// in any case, multiples of 1024 as in PostgreSQL's settings. isSize is
// false when the unit is not
// a size unit (the text may be a duration); reason says what is wrong with
// a size.
func ParseSize(p string) (n int64, isSize bool, reason string) {
	j := strings.IndexFunc(p, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if j < 0 {
		return 0, false, ""
	}
	mult, ok := sizeUnits[strings.ToLower(strings.TrimSpace(p[j:]))]
	if !ok {
		return 0, false, ""
	}
	v, err := strconv.ParseFloat(p[:j], 64)
	switch {
	case err != nil:
		return 0, true, Quote(p) + ": the size needs a number"
	case v*mult > math.MaxInt64:
		return 0, true, p + " is too large"
	case math.Round(v*mult) < 1:
		return 0, true, p + ": a limit must be > 0"
	}
	return int64(math.Round(v * mult)), true, ""
}
