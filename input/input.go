// Package input holds pgbenchx's one error type for bad input: a flag or
// value the user can fix from the message alone. The CLI exits 2 on it,
// having started and written nothing. It imports nothing of pgbenchx, so
// every package may use it (routing too, which imports nothing else).
package input

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Error names a flag, the value given and what is accepted, in one line:
// "--flag value: [reason; ]accepted".
type Error struct {
	Flag     string // without dashes, e.g. "max-lag"; or a name such as RUN_FOLDER
	Value    string // as given; empty when there was none
	Reason   string // optional: what is wrong, when the value alone does not say
	Accepted string // what would have been accepted, e.g. "want 1 to 1024"
}

// Bad is an Error whose Accepted text is formatted from accepted and args.
func Bad(flag, value, accepted string, args ...any) *Error {
	if len(args) > 0 {
		accepted = fmt.Sprintf(accepted, args...)
	}
	return &Error{Flag: flag, Value: value, Accepted: accepted}
}

func (e *Error) Error() string {
	var sb strings.Builder
	sb.WriteString(flagName(e.Flag))
	if e.Value != "" {
		sb.WriteByte(' ')
		sb.WriteString(quoteIfNeeded(e.Value))
	}
	sb.WriteString(": ")
	if e.Reason != "" {
		sb.WriteString(oneLine(e.Reason))
		sb.WriteString("; ")
	}
	sb.WriteString(oneLine(e.Accepted))
	return sb.String()
}

// BadInput marks the error as the user's input.
func (e *Error) BadInput() {}

// Is reports whether err is, or wraps, bad input: an *Error or any error
// with a BadInput method.
func Is(err error) bool {
	var bi interface{ BadInput() }
	return errors.As(err, &bi)
}

// flagName is "--flag" for a flag, the name itself for an argument
// written in capitals (RUN_FOLDER).
func flagName(f string) string {
	if f != "" && strings.ToUpper(f) == f && strings.ToLower(f) != f {
		return f
	}
	return "--" + f
}

// quoteIfNeeded quotes values that would otherwise be invisible, ambiguous,
// break the line or mean something else pasted into a shell (spaces,
// control characters, quotes, < > | & ; $ and the like).
func quoteIfNeeded(s string) string {
	if strings.IndexFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || !unicode.IsPrint(r) || strings.ContainsRune("\"'`<>|&;$*?!#(){}[]\\", r)
	}) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
