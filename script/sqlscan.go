package script

import (
	"strings"
)

// rawCmd is one unit cut out of the script text before it is compiled: an
// SQL statement or the text of a meta-command after its backslash.
type rawCmd struct {
	meta bool
	text string
	pos  int // offset of the command in the script, for its line number
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// Bytes >= 0x80 count as letters, as in PostgreSQL, so that UTF-8 names work.
func isIdentStart(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isIdentChar(c byte) bool { return isIdentStart(c) || isDigit(c) }

// opaque reports whether a comment, quoted string, quoted identifier or
// dollar-quoted string starts at s[i], inside which semicolons, colons and
// backslashes mean nothing. It returns what it found and the offset just
// past it, or end < 0 if it is not terminated.
func opaque(s string, i int) (what string, end int) {
	c := s[i]
	next := byte(0)
	if i+1 < len(s) {
		next = s[i+1]
	}
	switch {
	case c == '-' && next == '-':
		if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
			return "comment", i + j
		}
		return "comment", len(s)
	case c == '/' && next == '*':
		// PostgreSQL nests block comments, unlike C.
		depth := 1
		for j := i + 2; j < len(s); j++ {
			switch {
			case s[j] == '/' && j+1 < len(s) && s[j+1] == '*':
				depth++
				j++
			case s[j] == '*' && j+1 < len(s) && s[j+1] == '/':
				depth--
				j++
				if depth == 0 {
					return "comment", j + 1
				}
			}
		}
		return "/* comment", -1
	case c == '\'':
		// Backslash escapes only exist in E'...' strings: standard strings
		// take backslashes literally.
		escapes := i > 0 && (s[i-1] == 'E' || s[i-1] == 'e') && (i == 1 || !isIdentChar(s[i-2]))
		for j := i + 1; j < len(s); j++ {
			switch {
			case s[j] == '\\' && escapes:
				j++
			case s[j] == '\'':
				if j+1 < len(s) && s[j+1] == '\'' {
					j++
					continue
				}
				return "string", j + 1
			}
		}
		return "quoted string", -1
	case c == '"':
		// A doubled "" inside is just two adjacent identifiers to this scan,
		// which ends at the same place.
		if j := strings.IndexByte(s[i+1:], '"'); j >= 0 {
			return "identifier", i + 1 + j + 1
		}
		return `quoted identifier`, -1
	case c == '$':
		// $tag$ ... $tag$, but not $1 and not a $ inside an identifier.
		if i > 0 && (isIdentChar(s[i-1]) || s[i-1] == '$') {
			return "", 0
		}
		j := i + 1
		if j < len(s) && isIdentStart(s[j]) {
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
		}
		if j >= len(s) || s[j] != '$' {
			return "", 0
		}
		tag := s[i : j+1]
		if k := strings.Index(s[j+1:], tag); k >= 0 {
			return "dollar-quoted string", j + 1 + k + len(tag)
		}
		return "dollar-quoted string " + tag, -1
	}
	return "", 0
}

// split cuts a script into SQL statements and meta-commands the way
// pgbench's lexer does: a statement ends at a semicolon, at a backslash
// (which starts a meta-command; pgbench allows one after a statement on the
// same line, for \gset) or at the end of the text.
func split(text string) ([]rawCmd, *scanError) {
	var cmds []rawCmd
	start := -1 // where the current statement's first token is
	flush := func(end int) {
		if start >= 0 {
			cmds = append(cmds, rawCmd{text: strings.TrimRight(text[start:end], " \t\n\r\f\v"), pos: start})
			start = -1
		}
	}
	for i := 0; i < len(text); {
		if what, end := opaque(text, i); what != "" {
			if end < 0 {
				return nil, &scanError{pos: i, msg: "unterminated " + what}
			}
			if start < 0 && what != "comment" {
				start = i
			}
			i = end
			continue
		}
		switch c := text[i]; {
		case c == ';':
			flush(i)
			i++
		case c == '\\':
			flush(i)
			meta, end := metaLine(text, i+1)
			cmds = append(cmds, rawCmd{meta: true, text: meta, pos: i})
			i = end
		default:
			if start < 0 && !isSpace(c) {
				start = i
			}
			i++
		}
	}
	flush(len(text))
	return cmds, nil
}

// metaLine returns the meta-command starting at text[i] up to the end of its
// line, with backslash-newline continuations joined by a space, and the
// offset just past the line.
func metaLine(text string, i int) (string, int) {
	var b strings.Builder
	for i < len(text) {
		c := text[i]
		switch {
		case c == '\n':
			return strings.TrimRight(b.String(), "\r"), i + 1
		case c == '\\' && strings.HasPrefix(text[i+1:], "\n"):
			b.WriteByte(' ')
			i += 2
			continue
		case c == '\\' && strings.HasPrefix(text[i+1:], "\r\n"):
			b.WriteByte(' ')
			i += 3
			continue
		}
		b.WriteByte(c)
		i++
	}
	return strings.TrimRight(b.String(), "\r"), i
}

type scanError struct {
	pos int // offset in the scanned text
	msg string
}

// sqlVars splits an SQL statement around its :variable references. It
// returns the text between references (one more than the names) and the
// names, or an error at an offset within sql.
func sqlVars(sql string) (lits, names []string, err *scanError) {
	last := 0
	for i := 0; i < len(sql); {
		if what, end := opaque(sql, i); what != "" {
			i = end // split already rejected unterminated ones
			continue
		}
		c := sql[i]
		switch {
		case c == ':' && i+1 < len(sql) && sql[i+1] == ':':
			// A cast, or a run of colons, never starts a variable.
			for i < len(sql) && sql[i] == ':' {
				i++
			}
			continue
		case c == ':' && i+1 < len(sql) && isIdentStart(sql[i+1]):
			j := i + 2
			for j < len(sql) && isIdentChar(sql[j]) {
				j++
			}
			lits = append(lits, sql[last:i])
			names = append(names, sql[i+1:j])
			last, i = j, j
			continue
		case c == '$' && i+1 < len(sql) && isDigit(sql[i+1]) && (i == 0 || !isIdentChar(sql[i-1]) && sql[i-1] != '$'):
			j := i + 1
			for j < len(sql) && isDigit(sql[j]) {
				j++
			}
			return nil, nil, &scanError{pos: i, msg: "positional parameter " + sql[i:j] +
				" is not supported: write a :variable, which becomes a parameter"}
		}
		i++
	}
	lits = append(lits, sql[last:])
	return lits, names, nil
}
