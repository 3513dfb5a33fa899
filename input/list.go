package input

import "strings"

// SplitList splits a comma-separated list at the commas outside
// parentheses, so items may hold lists of their own:
// `off,ANY 1 (standby1, standby2)` is two items. Items are trimmed.
func SplitList(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth = max(depth-1, 0)
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

// Rejoin undoes the flag parser's split of a repeatable flag's values at
// their commas, for flags whose values hold commas of their own (options,
// DSNs): an item that does not start a value (starts says which do)
// continues the one before, joined with a comma.
func Rejoin(items []string, starts func(string) bool) []string {
	var out []string
	for _, item := range items {
		if len(out) > 0 && !starts(item) {
			out[len(out)-1] += "," + item
			continue
		}
		out = append(out, item)
	}
	return out
}
