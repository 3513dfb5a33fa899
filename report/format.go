package report

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// fixed formats x with prec decimals; NaN (unknown) becomes "".
func fixed(x float64, prec int) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return ""
	}
	if x == 0 {
		x = 0 // a negative zero would print as "-0.000"
	}
	return strconv.FormatFloat(x, 'f', prec, 64)
}

// orDash is how unknown values read on the terminal and in Markdown.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// grouped inserts thousands separators into the integer part of a
// formatted number, so 10000 reads "10,000" in reports meant for people.
func grouped(s string) string {
	if s == "" {
		return s
	}
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	intPart, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if hasFrac {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return sign + b.String()
}

func count(n int64) string { return grouped(strconv.FormatInt(n, 10)) }

// num is fixed with thousands separators, "-" when unknown.
func num(x float64, prec int) string { return orDash(grouped(fixed(x, prec))) }

// humanBytes prints a byte count as "1.5 MiB"; NaN is "-".
func humanBytes(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "-"
	}
	n := math.Round(x)
	if math.Abs(n) < 1024 {
		return fmt.Sprintf("%.0f B", n+0) // +0 turns a negative zero positive
	}
	for _, unit := range []string{"KiB", "MiB", "GiB", "TiB"} {
		n /= 1024
		if math.Abs(n) < 1024 || unit == "TiB" {
			return fmt.Sprintf("%.1f %s", n, unit)
		}
	}
	panic("unreachable")
}

// ratio is a/b, NaN when b is not positive: a rate over nothing is unknown,
// not zero.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return math.NaN()
	}
	return a / b
}

// pct is a/b as a percentage, NaN when b is zero.
func pct(a, b int64) float64 { return ratio(float64(a), float64(b)) * 100 }

// naturalLess orders "standby2" before "standby10": node names carry
// numbers, and reports list standbys the way people count them.
func naturalLess(a, b string) bool {
	pa, na, oka := splitNumber(a)
	pb, nb, okb := splitNumber(b)
	if oka && okb && pa == pb && na != nb {
		return na < nb
	}
	return a < b
}

func splitNumber(s string) (prefix string, n int, ok bool) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	if i == len(s) {
		return s, 0, false
	}
	n, err := strconv.Atoi(s[i:])
	return s[:i], n, err == nil
}

func sortNatural(names []string) {
	sort.Slice(names, func(i, j int) bool { return naturalLess(names[i], names[j]) })
}

// mdCell keeps a value from breaking a Markdown table row.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}
