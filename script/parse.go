package script

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// maxParams is the extended protocol's limit on parameters per statement.
const maxParams = 65535

// Parse reads a pgbench script. name is the script's name, used in errors.
func Parse(name, text string) (*Script, error) {
	p := &parser{
		s: &Script{Name: name, Text: text, slots: map[string]int{}},
	}
	for i := 0; i < len(text); i++ {
		if text[i] == '\n' {
			p.newlines = append(p.newlines, i)
		}
	}
	cmds, serr := split(text)
	if serr != nil {
		return nil, p.errorf(serr.pos, "%s", serr.msg)
	}
	for _, c := range cmds {
		var err error
		if c.meta {
			err = p.meta(c)
		} else {
			err = p.sql(c)
		}
		if err != nil {
			return nil, err
		}
	}
	if p.s.nsql == 0 {
		return nil, &Error{Script: name, Msg: "no SQL statement in script"}
	}
	for i := range p.s.Steps {
		p.s.Steps[i].script = p.s
	}
	return p.s, nil
}

type parser struct {
	s        *Script
	newlines []int // offsets of '\n' in the text, for line numbers
}

func (p *parser) line(pos int) int {
	return 1 + sort.SearchInts(p.newlines, pos)
}

func (p *parser) errorf(pos int, format string, args ...any) error {
	return &Error{Script: p.s.Name, Line: p.line(pos), Msg: fmt.Sprintf(format, args...)}
}

// slot returns the variable's slot, allocating one on first sight.
func (p *parser) slot(name string) int {
	if i, ok := p.s.slots[name]; ok {
		return i
	}
	i := len(p.s.vars)
	p.s.slots[name] = i
	p.s.vars = append(p.s.vars, name)
	p.s.assigned = append(p.s.assigned, false)
	return i
}

func (p *parser) sql(c rawCmd) error {
	lits, names, serr := sqlVars(c.text)
	if serr != nil {
		return p.errorf(c.pos+serr.pos, "%s", serr.msg)
	}
	st := Step{Kind: StepSQL, Line: p.line(c.pos), Text: c.text, lits: lits}
	byName := map[string]int{}
	var b strings.Builder
	b.WriteString(lits[0])
	for i, name := range names {
		n, ok := byName[name]
		if !ok {
			n = len(st.paramSlots)
			if n == maxParams {
				return p.errorf(c.pos, "statement has more than %d distinct variables", maxParams)
			}
			byName[name] = n
			st.paramSlots = append(st.paramSlots, p.slot(name))
			st.Params = append(st.Params, name)
		}
		st.refs = append(st.refs, n)
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n + 1))
		b.WriteString(lits[i+1])
	}
	st.SQL = b.String()
	p.s.Steps = append(p.s.Steps, st)
	p.s.nsql++
	return nil
}

// unsupported explains, per meta-command pgbenchx refuses, what it lacks.
var unsupported = map[string]string{
	"gset":          "query results are not read back into variables",
	"aset":          "query results are not read back into variables",
	"if":            "conditional blocks are not supported",
	"elif":          "conditional blocks are not supported",
	"else":          "conditional blocks are not supported",
	"endif":         "conditional blocks are not supported",
	"shell":         "shell commands are not run",
	"setshell":      "shell commands are not run",
	"startpipeline": "pipeline mode is not supported",
	"syncpipeline":  "pipeline mode is not supported",
	"endpipeline":   "pipeline mode is not supported",
	"setrandom":     `it was removed in PostgreSQL 9.6; write \set name random(lb, ub)`,
	";":             "compound statements are not supported: a prepared statement holds one statement",
}

func (p *parser) meta(c rawCmd) error {
	cmd, rest := cutWord(c.text)
	lc := strings.ToLower(cmd)
	switch lc {
	case "set":
		return p.set(c, rest)
	case "sleep":
		return p.sleep(c, rest)
	case "":
		return p.errorf(c.pos, `invalid command "\%s"`, c.text)
	}
	if why, ok := unsupported[lc]; ok {
		return p.errorf(c.pos, `\%s is not supported: %s`, cmd, why)
	}
	return p.errorf(c.pos, `invalid command "\%s"`, cmd)
}

// cutWord splits off the first whitespace-separated word of s.
func cutWord(s string) (word, rest string) {
	s = strings.TrimLeft(s, " \t\r\f\v")
	i := strings.IndexAny(s, " \t\r\f\v")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

func validVarName(name string) bool {
	if name == "" || !isIdentStart(name[0]) {
		return false
	}
	for i := 1; i < len(name); i++ {
		if !isIdentChar(name[i]) {
			return false
		}
	}
	return true
}

func (p *parser) set(c rawCmd, rest string) error {
	name, expr := cutWord(rest)
	if name == "" {
		return p.errorf(c.pos, `\set: missing variable name`)
	}
	if !validVarName(name) {
		return p.errorf(c.pos, `\set: invalid variable name %q`, name)
	}
	if strings.TrimSpace(expr) == "" {
		return p.errorf(c.pos, `\set %s: missing expression`, name)
	}
	n, err := parseExpr(expr, p.slot)
	if err != nil {
		return p.errorf(c.pos, `\set %s: %v`, name, err)
	}
	slot := p.slot(name)
	p.s.assigned[slot] = true
	p.s.Steps = append(p.s.Steps, Step{
		Kind: StepSet, Line: p.line(c.pos), Text: `\` + c.text, Var: name, slot: slot, expr: n,
	})
	return nil
}

var sleepUnits = map[string]time.Duration{
	"us": time.Microsecond,
	"ms": time.Millisecond,
	"s":  time.Second,
}

func (p *parser) sleep(c rawCmd, rest string) error {
	args := strings.Fields(rest)
	switch {
	case len(args) == 0:
		return p.errorf(c.pos, `\sleep: missing argument`)
	case len(args) > 2:
		return p.errorf(c.pos, `\sleep: too many arguments`)
	}
	st := Step{Kind: StepSleep, Line: p.line(c.pos), Text: `\` + c.text, sleepSlot: -1, unit: time.Second}
	amount, unit := args[0], ""
	if len(args) == 2 {
		unit = args[1]
	}
	if name, ok := strings.CutPrefix(amount, ":"); ok {
		if !validVarName(name) {
			return p.errorf(c.pos, `\sleep: invalid variable name %q`, name)
		}
		st.sleepSlot = p.slot(name)
	} else {
		// pgbench accepts the unit glued to the number: \sleep 10ms.
		digits := strings.TrimLeft(amount, "+-")
		end := 0
		for end < len(digits) && isDigit(digits[end]) {
			end++
		}
		if end > 0 && end < len(digits) && isIdentStart(digits[end]) && unit == "" {
			unit = digits[end:]
			amount = amount[:len(amount)-len(unit)]
		}
		n, err := strconv.ParseInt(amount, 10, 64)
		if err != nil {
			return p.errorf(c.pos, `\sleep: invalid sleep time %q, must be an integer`, amount)
		}
		st.sleepN = n
	}
	if unit != "" {
		d, ok := sleepUnits[strings.ToLower(unit)]
		if !ok {
			return p.errorf(c.pos, `\sleep: unrecognized time unit %q, must be us, ms or s`, unit)
		}
		st.unit = d
	}
	p.s.Steps = append(p.s.Steps, st)
	return nil
}
