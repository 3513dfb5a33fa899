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
