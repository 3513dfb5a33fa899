package script

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

type kind uint8

const (
	kUnset kind = iota // the variable was never assigned
	kNull
	kBool
	kInt
	kDouble
)

func (k kind) String() string {
	switch k {
	case kNull:
		return "null"
	case kBool:
		return "boolean"
	case kInt:
		return "int"
	case kDouble:
		return "double"
	}
	return "unset"
}

// value is a variable's or expression's value. It is a plain struct rather
// than an interface so that evaluating never allocates.
type value struct {
	k kind
	i int64 // kInt; kBool as 0 or 1
	f float64
}

func intValue(i int64) value { return value{k: kInt, i: i} }

func doubleValue(f float64) value { return value{k: kDouble, f: f} }

func boolValue(b bool) value {
	if b {
		return value{k: kBool, i: 1}
	}
	return value{k: kBool}
}

func (v value) toInt() (int64, error) {
	switch v.k {
	case kInt:
		return v.i, nil
	case kDouble:
		// pgbench rounds with rint(), which rounds half to even.
		d := math.RoundToEven(v.f)
		if math.IsNaN(d) || d < -0x1p63 || d >= 0x1p63 {
			return 0, fmt.Errorf("double to int overflow for %f", d)
		}
		return int64(d), nil
	}
	return 0, fmt.Errorf("cannot coerce %s to int", v.k)
}

func (v value) toDouble() (float64, error) {
	switch v.k {
	case kDouble:
		return v.f, nil
	case kInt:
		return float64(v.i), nil
	}
	return 0, fmt.Errorf("cannot coerce %s to double", v.k)
}

func (v value) toBool() (bool, error) {
	if v.k == kBool {
		return v.i != 0, nil
	}
	return false, fmt.Errorf("cannot coerce %s to boolean", v.k)
}

// truth is CASE WHEN's looser test: numbers count, null is false.
func (v value) truth() bool {
	switch v.k {
	case kBool, kInt:
		return v.i != 0
	case kDouble:
		return v.f != 0
	}
	return false
}

// any returns the value as int64, float64, bool or nil (null).
func (v value) any() any {
	switch v.k {
	case kBool:
		return v.i != 0
	case kInt:
		return v.i
	case kDouble:
		return v.f
	}
	return nil
}

// appendText appends the value as PostgreSQL's input functions read it.
// Null has no text: callers send it as SQL NULL.
func (v value) appendText(b []byte) []byte {
	switch v.k {
	case kBool:
		if v.i != 0 {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case kInt:
		return strconv.AppendInt(b, v.i, 10)
	case kDouble:
		switch {
		case math.IsNaN(v.f):
			return append(b, "NaN"...)
		case math.IsInf(v.f, 1):
			return append(b, "Infinity"...)
		case math.IsInf(v.f, -1):
			return append(b, "-Infinity"...)
		}
		// Shortest text that reads back as the same double, where pgbench
		// prints 15 significant digits and may lose the last bits.
		return strconv.AppendFloat(b, v.f, 'g', -1, 64)
	}
	return append(b, "NULL"...)
}

// isOperatorChar reports whether c can be part of a PostgreSQL operator.
func isOperatorChar(c byte) bool {
	switch c {
	case '+', '-', '*', '/', '<', '>', '=', '~', '!', '@', '#', '%', '^', '&', '|', '`', '?':
		return true
	}
	return false
}

// appendLiteral appends the value as an SQL literal, for the simple
// protocol. b holds the statement so far: a negative number right after an
// operator character gets a space, or "x-:v" with v = -1 would read as the
// start of a "--" comment and "x@:v" as an unknown "@-" operator.
func (v value) appendLiteral(b []byte) []byte {
	switch v.k {
	case kNull:
		return append(b, "NULL"...)
	case kDouble:
		if math.IsNaN(v.f) || math.IsInf(v.f, 0) {
			b = append(b, '\'')
			b = v.appendText(b)
			return append(b, "'::double precision"...)
		}
	}
	if (v.k == kInt && v.i < 0 || v.k == kDouble && math.Signbit(v.f)) &&
		len(b) > 0 && isOperatorChar(b[len(b)-1]) {
		b = append(b, ' ')
	}
	return v.appendText(b)
}

var (
	errDivByZero = errors.New("division by zero")
	errAddRange  = errors.New("bigint add out of range")
	errSubRange  = errors.New("bigint sub out of range")
	errMulRange  = errors.New("bigint mul out of range")
	errDivRange  = errors.New("bigint div out of range")
	errAbsRange  = errors.New("bigint abs out of range")
)
