package script

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// eval computes an expression. It allocates only to report an error.
func (st *State) eval(n *node) (value, error) {
	switch n.op {
	case opConst:
		return n.val, nil
	case opVar:
		v := st.vals[n.slot]
		if v.k == kUnset {
			return v, undefined(n.name)
		}
		return v, nil
	case opAnd, opOr:
		return st.evalLogical(n)
	case opCase:
		last := len(n.args) - 1
		for i := 0; i < last; i += 2 {
			c, err := st.eval(n.args[i])
			if err != nil {
				return c, err
			}
			if c.truth() {
				return st.eval(n.args[i+1])
			}
		}
		return st.eval(n.args[last])
	case opGreatest, opLeast:
		return st.evalExtremum(n)
	}

	// The rest are strict: all arguments are evaluated first, and a null
	// argument makes a null result, except for IS and debug.
	var a [3]value
	null := false
	for i, arg := range n.args {
		v, err := st.eval(arg)
		if err != nil {
			return v, err
		}
		a[i] = v
		null = null || v.k == kNull
	}
	if null && n.op != opIs && n.op != opDebug {
		return value{k: kNull}, nil
	}
	switch n.op {
	case opAdd, opSub, opMul, opDiv, opMod, opEq, opNe, opLt, opLe:
		return arith(n.op, a[0], a[1])
	case opBitAnd, opBitOr, opBitXor, opShl, opShr:
		return bitwise(n.op, a[0], a[1])
	case opNot:
		b, err := a[0].toBool()
		return boolValue(!b), err
	case opIs:
		return boolValue(a[0].k == a[1].k && (a[0].k != kBool || a[0].i == a[1].i)), nil
	case opDebug:
		return a[0], nil
	case opPi:
		return doubleValue(math.Pi), nil
	case opAbs:
		switch a[0].k {
		case kInt:
			if a[0].i == math.MinInt64 {
				return value{}, errAbsRange
			}
			if a[0].i < 0 {
				return intValue(-a[0].i), nil
			}
			return a[0], nil
		case kDouble:
			return doubleValue(math.Abs(a[0].f)), nil
		}
		return value{}, fmt.Errorf("cannot coerce %s to int", a[0].k)
	case opDouble, opSqrt, opLn, opExp:
		d, err := a[0].toDouble()
		if err != nil {
			return value{}, err
		}
		switch n.op {
		case opSqrt:
			d = math.Sqrt(d)
		case opLn:
			d = math.Log(d)
		case opExp:
			d = math.Exp(d)
		}
		return doubleValue(d), nil
	case opInt:
		i, err := a[0].toInt()
		return intValue(i), err
	case opPow:
		x, err := a[0].toDouble()
		if err != nil {
			return value{}, err
		}
		y, err := a[1].toDouble()
		return doubleValue(math.Pow(x, y)), err
	case opHashFNV1a, opHashMurmur2:
		x, err := a[0].toInt()
		if err != nil {
			return value{}, err
		}
		seed, err := a[1].toInt()
		if err != nil {
			return value{}, err
		}
		if n.op == opHashFNV1a {
			return intValue(hashFNV1a(x, uint64(seed))), nil
		}
		return intValue(hashMurmur2(x, uint64(seed))), nil
	case opPermute:
		var x [3]int64
		for i := range x {
			var err error
			if x[i], err = a[i].toInt(); err != nil {
				return value{}, err
			}
		}
		if x[1] <= 0 {
			return value{}, errPermuteSize
		}
		return intValue(permute(x[0], x[1], x[2])), nil
	case opRandom, opRandomExponential, opRandomGaussian, opRandomZipfian:
		return st.random(n.op, a)
	}
	return value{}, fmt.Errorf("internal error: unknown operation %d", n.op)
}

var errPermuteSize = errors.New("permute size parameter must be greater than zero")

// evalLogical implements pgbench's AND and OR: a null left operand makes a
// null result, the right operand is only evaluated when needed, and both
// must be booleans.
func (st *State) evalLogical(n *node) (value, error) {
	l, err := st.eval(n.args[0])
	if err != nil || l.k == kNull {
		return l, err
	}
	lb, err := l.toBool()
	if err != nil {
		return value{}, err
	}
	if lb == (n.op == opOr) {
		return boolValue(lb), nil
	}
	r, err := st.eval(n.args[1])
	if err != nil || r.k == kNull {
		return r, err
	}
	rb, err := r.toBool()
	return boolValue(rb), err
}

// evalExtremum is least and greatest: double if any argument is double.
func (st *State) evalExtremum(n *node) (value, error) {
	var a [maxFuncArgs]value
	null, double := false, false
	for i, arg := range n.args {
		v, err := st.eval(arg)
		if err != nil {
			return v, err
		}
		a[i] = v
		null = null || v.k == kNull
		double = double || v.k == kDouble
	}
	if null {
		return value{k: kNull}, nil
	}
	args := a[:len(n.args)]
	if double {
		best, err := args[0].toDouble()
		if err != nil {
			return value{}, err
		}
		for _, v := range args[1:] {
			d, err := v.toDouble()
			if err != nil {
				return value{}, err
			}
			if n.op == opLeast {
				best = math.Min(best, d)
			} else {
				best = math.Max(best, d)
			}
		}
		return doubleValue(best), nil
	}
	best, err := args[0].toInt()
	if err != nil {
		return value{}, err
	}
	for _, v := range args[1:] {
		i, err := v.toInt()
		if err != nil {
			return value{}, err
		}
		if n.op == opLeast {
			best = min(best, i)
		} else {
			best = max(best, i)
		}
	}
	return intValue(best), nil
}

// arith is the overloaded arithmetic and comparison: double if either side
// is double, except % which is always integer.
func arith(o op, l, r value) (value, error) {
	if (l.k == kDouble || r.k == kDouble) && o != opMod {
		x, err := l.toDouble()
		if err != nil {
			return value{}, err
		}
		y, err := r.toDouble()
		if err != nil {
			return value{}, err
		}
		switch o {
		case opAdd:
			return doubleValue(x + y), nil
		case opSub:
			return doubleValue(x - y), nil
		case opMul:
			return doubleValue(x * y), nil
		case opDiv:
			return doubleValue(x / y), nil
		case opEq:
			return boolValue(x == y), nil
		case opNe:
			return boolValue(x != y), nil
		case opLt:
			return boolValue(x < y), nil
		}
		return boolValue(x <= y), nil
	}
	x, err := l.toInt()
	if err != nil {
		return value{}, err
	}
	y, err := r.toInt()
	if err != nil {
		return value{}, err
	}
	switch o {
	case opAdd:
		s := x + y
		if (s > x) != (y > 0) {
			return value{}, errAddRange
		}
		return intValue(s), nil
	case opSub:
		s := x - y
		if (s < x) != (y > 0) {
			return value{}, errSubRange
		}
		return intValue(s), nil
	case opMul:
		p := x * y
		if x != 0 && (p/x != y || x == -1 && y == math.MinInt64) {
			return value{}, errMulRange
		}
		return intValue(p), nil
	case opDiv, opMod:
		switch {
		case y == 0:
			return value{}, errDivByZero
		case y == -1 && o == opMod:
			return intValue(0), nil
		case y == -1 && x == math.MinInt64:
			return value{}, errDivRange
		case o == opMod:
			return intValue(x % y), nil
		}
		return intValue(x / y), nil
	case opEq:
		return boolValue(x == y), nil
	case opNe:
		return boolValue(x != y), nil
	case opLt:
		return boolValue(x < y), nil
	}
	return boolValue(x <= y), nil
}

// bitwise operators. Shifts by a negative or too large amount yield 0 or -1
// in Go instead of C's undefined behaviour.
func bitwise(o op, l, r value) (value, error) {
	x, err := l.toInt()
	if err != nil {
		return value{}, err
	}
	y, err := r.toInt()
	if err != nil {
		return value{}, err
	}
	switch o {
	case opBitAnd:
		return intValue(x & y), nil
	case opBitOr:
		return intValue(x | y), nil
	case opBitXor:
		return intValue(x ^ y), nil
	case opShl:
		return intValue(x << uint64(y)), nil
	}
	return intValue(x >> uint64(y)), nil
}

// functionNames lists the known functions for an error about name: close
// spellings first, then the rest alphabetically.
func functionNames(name string) []string {
	names := make([]string, 0, len(functions))
	for f := range functions {
		names = append(names, f)
	}
	sort.Strings(names)
	near := func(f string) bool { return editDistance(name, f) <= 2 }
	sort.SliceStable(names, func(i, j int) bool { return near(names[i]) && !near(names[j]) })
	return names
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
