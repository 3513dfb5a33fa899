package script

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// op is what an expression node computes. Operators and functions share
// one space because pgbench treats operators as functions of two arguments.
type op uint8

const (
	opConst op = iota
	opVar
	opAdd
	opSub
	opMul
	opDiv
	opMod
	opEq
	opNe
	opLt
	opLe
	opBitAnd
	opBitOr
	opBitXor
	opShl
	opShr
	opAnd
	opOr
	opNot
	opIs
	opCase
	opAbs
	opDebug
	opDouble
	opExp
	opGreatest
	opLeast
	opHashFNV1a
	opHashMurmur2
	opInt
	opLn
	opPermute
	opPi
	opPow
	opRandom
	opRandomExponential
	opRandomGaussian
	opRandomZipfian
	opSqrt
)

type node struct {
	op   op
	val  value  // opConst
	slot int    // opVar
	name string // opVar: the variable, for errors
	args []*node
}

// maxFuncArgs is pgbench's limit on function arguments, kept so that a
// script accepted here is accepted there.
const maxFuncArgs = 16

type funcSpec struct {
	op       op
	min, max int
	// seeded functions take :default_seed when their last argument is
	// omitted, as in pgbench.
	seeded bool
}

var functions = map[string]funcSpec{
	"abs":                {op: opAbs, min: 1, max: 1},
	"debug":              {op: opDebug, min: 1, max: 1},
	"double":             {op: opDouble, min: 1, max: 1},
	"exp":                {op: opExp, min: 1, max: 1},
	"greatest":           {op: opGreatest, min: 1, max: maxFuncArgs},
	"hash":               {op: opHashMurmur2, min: 1, max: 2, seeded: true},
	"hash_fnv1a":         {op: opHashFNV1a, min: 1, max: 2, seeded: true},
	"hash_murmur2":       {op: opHashMurmur2, min: 1, max: 2, seeded: true},
	"int":                {op: opInt, min: 1, max: 1},
	"least":              {op: opLeast, min: 1, max: maxFuncArgs},
	"ln":                 {op: opLn, min: 1, max: 1},
	"mod":                {op: opMod, min: 2, max: 2},
	"permute":            {op: opPermute, min: 2, max: 3, seeded: true},
	"pi":                 {op: opPi, min: 0, max: 0},
	"pow":                {op: opPow, min: 2, max: 2},
	"power":              {op: opPow, min: 2, max: 2},
	"random":             {op: opRandom, min: 2, max: 2},
	"random_exponential": {op: opRandomExponential, min: 3, max: 3},
	"random_gaussian":    {op: opRandomGaussian, min: 3, max: 3},
	"random_zipfian":     {op: opRandomZipfian, min: 3, max: 3},
	"sqrt":               {op: opSqrt, min: 1, max: 1},
}

type tokKind uint8

const (
	tEOF tokKind = iota
	tInt
	tMaxIntPlusOne // 9223372036854775808, only valid after a unary minus
	tDouble
	tVar
	tWord // function name or keyword
	tPunct
)

type token struct {
	kind tokKind
	text string
	ival int64
	fval float64
}

var twoCharOps = []string{"<=", ">=", "<>", "!=", "<<", ">>"}

func lexExpr(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case isSpace(c):
			i++
		case c == ':':
			j := i + 1
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			if j == i+1 {
				return nil, errors.New(`":" must be followed by a variable name`)
			}
			toks = append(toks, token{kind: tVar, text: s[i+1 : j]})
			i = j
		case isDigit(c) || c == '.' && i+1 < len(s) && isDigit(s[i+1]):
			t, n, err := lexNumber(s[i:])
			if err != nil {
				return nil, err
			}
			toks = append(toks, t)
			i += n
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			toks = append(toks, token{kind: tWord, text: s[i:j]})
			i = j
		default:
			n := 0
			for _, o := range twoCharOps {
				if strings.HasPrefix(s[i:], o) {
					n = 2
				}
			}
			if n == 0 && strings.IndexByte("+-*/%()<>=&|#~,", c) >= 0 {
				n = 1
			}
			if n == 0 {
				return nil, fmt.Errorf("unexpected character %q", s[i:i+1])
			}
			toks = append(toks, token{kind: tPunct, text: s[i : i+n]})
			i += n
		}
	}
	return append(toks, token{kind: tEOF}), nil
}

// lexNumber reads an integer or double constant at the start of s, with
// pgbench's rule: a "." or an exponent makes it a double.
func lexNumber(s string) (token, int, error) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	double := false
	if i < len(s) && s[i] == '.' {
		double = true
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && isDigit(s[j]) {
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			double, i = true, j
		}
	}
	text := s[:i]
	if double {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil && math.IsInf(f, 0) {
			return token{}, 0, fmt.Errorf("double constant overflow: %s", text)
		}
		return token{kind: tDouble, text: text, fval: f}, i, nil
	}
	if text == "9223372036854775808" {
		return token{kind: tMaxIntPlusOne, text: text}, i, nil
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return token{}, 0, fmt.Errorf("bigint constant overflow: %s", text)
	}
	return token{kind: tInt, text: text, ival: n}, i, nil
}

// parseExpr compiles a \set expression. slot maps a variable name to its
// slot in the client's state.
func parseExpr(s string, slot func(string) int) (*node, error) {
	toks, err := lexExpr(s)
	if err != nil {
		return nil, err
	}
	p := &exprParser{toks: toks, slot: slot}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.unexpected()
	}
	return n, nil
}

// exprParser is a recursive-descent parser with one function per level of
// pgbench's precedence table (exprparse.y), lowest first: OR, AND, NOT,
// IS, comparisons (non-associative), bitwise, additive, multiplicative,
// unary.
type exprParser struct {
	toks []token
	i    int
	slot func(string) int
}

func (p *exprParser) peek() token { return p.toks[p.i] }

// is reports whether the next token is the punctuation or keyword s
// (keywords are case-insensitive).
func (p *exprParser) is(s string) bool {
	t := p.peek()
	return (t.kind == tPunct || t.kind == tWord) && strings.EqualFold(t.text, s)
}

func (p *exprParser) accept(s string) bool {
	if p.is(s) {
		p.i++
		return true
	}
	return false
}

func (p *exprParser) expect(s string) error {
	if !p.accept(s) {
		return fmt.Errorf("syntax error: expected %s, found %s", s, describe(p.peek()))
	}
	return nil
}

func (p *exprParser) unexpected() error {
	return fmt.Errorf("syntax error at %s", describe(p.peek()))
}

func describe(t token) string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tVar:
		return strconv.Quote(":" + t.text)
	}
	return strconv.Quote(t.text)
}

func call(o op, args ...*node) *node { return &node{op: o, args: args} }

func constant(v value) *node { return &node{op: opConst, val: v} }

type binary struct {
	tok  string
	op   op
	swap bool // a > b is b < a, as in pgbench
}

func (p *exprParser) leftAssoc(ops []binary, operand func() (*node, error)) (*node, error) {
	l, err := operand()
	if err != nil {
		return nil, err
	}
	for {
		var b *binary
		for k := range ops {
			if p.is(ops[k].tok) {
				b = &ops[k]
				break
			}
		}
		if b == nil {
			return l, nil
		}
		p.i++
		r, err := operand()
		if err != nil {
			return nil, err
		}
		l = call(b.op, l, r)
	}
}

var (
	orOps  = []binary{{tok: "or", op: opOr}}
	andOps = []binary{{tok: "and", op: opAnd}}
	cmpOps = []binary{
		{tok: "=", op: opEq}, {tok: "<>", op: opNe}, {tok: "!=", op: opNe},
		{tok: "<", op: opLt}, {tok: "<=", op: opLe},
		{tok: ">", op: opLt, swap: true}, {tok: ">=", op: opLe, swap: true},
	}
	bitOps = []binary{
		{tok: "&", op: opBitAnd}, {tok: "|", op: opBitOr}, {tok: "#", op: opBitXor},
		{tok: "<<", op: opShl}, {tok: ">>", op: opShr},
	}
	addOps = []binary{{tok: "+", op: opAdd}, {tok: "-", op: opSub}}
	mulOps = []binary{{tok: "*", op: opMul}, {tok: "/", op: opDiv}, {tok: "%", op: opMod}}
)

func (p *exprParser) or() (*node, error)  { return p.leftAssoc(orOps, p.and) }
func (p *exprParser) and() (*node, error) { return p.leftAssoc(andOps, p.isExpr) }
func (p *exprParser) bit() (*node, error) { return p.leftAssoc(bitOps, p.add) }
func (p *exprParser) add() (*node, error) { return p.leftAssoc(addOps, p.mul) }
func (p *exprParser) mul() (*node, error) { return p.leftAssoc(mulOps, p.unary) }

// NOT binds looser than IS and comparisons (NOT a = b is NOT (a = b)) but
// may appear wherever an operand may, so unary handles it.

// isExpr parses the postfix IS forms; they do not chain.
func (p *exprParser) isExpr() (*node, error) {
	n, err := p.cmp()
	if err != nil {
		return nil, err
	}
	null := constant(value{k: kNull})
	switch {
	case p.accept("isnull"):
		return call(opIs, n, null), nil
	case p.accept("notnull"):
		return call(opNot, call(opIs, n, null)), nil
	case p.accept("is"):
		negate := p.accept("not")
		var what *node
		switch {
		case p.accept("null"):
			what = null
		case p.accept("true"):
			what = constant(value{k: kBool, i: 1})
		case p.accept("false"):
			what = constant(value{k: kBool})
		default:
			return nil, fmt.Errorf("syntax error: expected NULL, TRUE or FALSE after IS, found %s", describe(p.peek()))
		}
		n = call(opIs, n, what)
		if negate {
			n = call(opNot, n)
		}
	}
	return n, nil
}

func (p *exprParser) cmp() (*node, error) {
	l, err := p.bit()
	if err != nil {
		return nil, err
	}
	for _, b := range cmpOps {
		if !p.accept(b.tok) {
			continue
		}
		r, err := p.bit()
		if err != nil {
			return nil, err
		}
		for _, c := range cmpOps {
			if p.is(c.tok) {
				return nil, fmt.Errorf("syntax error at %q: comparisons do not chain, add parentheses", c.tok)
			}
		}
		if b.swap {
			l, r = r, l
		}
		return call(b.op, l, r), nil
	}
	return l, nil
}

func (p *exprParser) unary() (*node, error) {
	switch {
	case p.accept("+"):
		return p.unary()
	case p.accept("-"):
		if p.peek().kind == tMaxIntPlusOne {
			p.i++
			return constant(value{k: kInt, i: math.MinInt64}), nil
		}
		n, err := p.unary()
		if err != nil {
			return nil, err
		}
		return call(opSub, constant(value{k: kInt}), n), nil
	case p.accept("~"):
		// In pgbench's grammar ~ has the precedence of the bitwise
		// operators, so ~ 1 + 2 is ~(1 + 2).
		n, err := p.add()
		if err != nil {
			return nil, err
		}
		return call(opBitXor, constant(value{k: kInt, i: -1}), n), nil
	case p.accept("not"):
		n, err := p.isExpr()
		if err != nil {
			return nil, err
		}
		return call(opNot, n), nil
	}
	return p.primary()
}

func (p *exprParser) primary() (*node, error) {
	t := p.peek()
	switch t.kind {
	case tInt:
		p.i++
		return constant(value{k: kInt, i: t.ival}), nil
	case tDouble:
		p.i++
		return constant(value{k: kDouble, f: t.fval}), nil
	case tMaxIntPlusOne:
		return nil, fmt.Errorf("bigint constant overflow: %s", t.text)
	case tVar:
		p.i++
		return &node{op: opVar, slot: p.slot(t.text), name: t.text}, nil
	case tPunct:
		if p.accept("(") {
			n, err := p.or()
			if err != nil {
				return nil, err
			}
			return n, p.expect(")")
		}
	case tWord:
		switch strings.ToLower(t.text) {
		case "null":
			p.i++
			return constant(value{k: kNull}), nil
		case "true":
			p.i++
			return constant(value{k: kBool, i: 1}), nil
		case "false":
			p.i++
			return constant(value{k: kBool}), nil
		case "case":
			p.i++
			return p.caseExpr()
		case "and", "or", "not", "is", "isnull", "notnull", "when", "then", "else", "end":
			return nil, p.unexpected()
		}
		p.i++
		if _, known := functions[strings.ToLower(t.text)]; !known && !p.is("(") {
			return nil, fmt.Errorf("syntax error at %q: a variable is written :%s", t.text, t.text)
		}
		return p.funcCall(t.text)
	}
	return nil, p.unexpected()
}

// caseExpr parses what follows CASE into args when1, then1, ..., else.
func (p *exprParser) caseExpr() (*node, error) {
	n := &node{op: opCase}
	for p.accept("when") {
		cond, err := p.or()
		if err != nil {
			return nil, err
		}
		if err := p.expect("then"); err != nil {
			return nil, err
		}
		res, err := p.or()
		if err != nil {
			return nil, err
		}
		n.args = append(n.args, cond, res)
	}
	if len(n.args) == 0 {
		return nil, fmt.Errorf("syntax error: expected WHEN after CASE, found %s", describe(p.peek()))
	}
	els := constant(value{k: kNull})
	if p.accept("else") {
		var err error
		if els, err = p.or(); err != nil {
			return nil, err
		}
	}
	if err := p.expect("end"); err != nil {
		return nil, err
	}
	n.args = append(n.args, els)
	return n, nil
}

func (p *exprParser) funcCall(name string) (*node, error) {
	spec, ok := functions[strings.ToLower(name)]
	if !ok {
		return nil, fmt.Errorf("unknown function %q (want %s)", name, strings.Join(functionNames(name), ", "))
	}
	if err := p.expect("("); err != nil {
		return nil, err
	}
	n := &node{op: spec.op}
	if !p.accept(")") {
		for {
			a, err := p.or()
			if err != nil {
				return nil, err
			}
			n.args = append(n.args, a)
			if p.accept(")") {
				break
			}
			if err := p.expect(","); err != nil {
				return nil, err
			}
		}
	}
	lname := strings.ToLower(name)
	switch got := len(n.args); {
	case got >= spec.min && got <= spec.max:
	case spec.min == spec.max:
		return nil, fmt.Errorf("function %s takes %d argument%s, got %d", lname, spec.min, plural(spec.min), got)
	case got < spec.min && spec.max == maxFuncArgs:
		return nil, fmt.Errorf("function %s takes at least %d argument%s", lname, spec.min, plural(spec.min))
	default:
		return nil, fmt.Errorf("function %s takes %d to %d arguments, got %d", lname, spec.min, spec.max, got)
	}
	if spec.seeded && len(n.args) < spec.max {
		n.args = append(n.args, &node{op: opVar, slot: p.slot("default_seed"), name: "default_seed"})
	}
	return n, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
