package script

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// Limits on the distribution parameters, from pgbench.
const (
	minGaussianParam = 2.0
	// Zipfian draws by rejection, which gets slow as the parameter nears
	// 1; pgbench 12+ refuses values below 1.001 rather than stall.
	minZipfianParam = 1.001
	maxZipfianParam = 1000.0
)

var (
	errEmptyRange    = errors.New("empty range given to random")
	errRangeTooLarge = errors.New("random range is too large")
)

// random evaluates random(lb, ub) and its non-uniform variants.
func (st *State) random(o op, a [3]value) (value, error) {
	lo, err := a[0].toInt()
	if err != nil {
		return value{}, err
	}
	hi, err := a[1].toInt()
	if err != nil {
		return value{}, err
	}
	if lo > hi {
		return value{}, errEmptyRange
	}
	// The width hi-lo+1 must fit in an int64, so a full-range draw fails,
	// as in pgbench.
	width := hi - lo + 1
	if width <= 0 {
		return value{}, errRangeTooLarge
	}
	if o == opRandom {
		return intValue(lo + st.r.Int64N(width)), nil
	}
	param, err := a[2].toDouble()
	if err != nil {
		return value{}, err
	}
	switch o {
	case opRandomExponential:
		if !(param > 0) {
			return value{}, fmt.Errorf("exponential parameter must be greater than zero (not %f)", param)
		}
		return intValue(lo + st.exponential(width, param)), nil
	case opRandomGaussian:
		if !(param >= minGaussianParam) {
			return value{}, fmt.Errorf("gaussian parameter must be at least %f (not %f)", minGaussianParam, param)
		}
		return intValue(lo + st.gaussian(width, param)), nil
	}
	if !(param >= minZipfianParam && param <= maxZipfianParam) {
		return value{}, fmt.Errorf("zipfian parameter must be in range [%.3f, %.0f] (not %f)",
			minZipfianParam, maxZipfianParam, param)
	}
	return intValue(lo + st.zipfian(width, param)), nil
}

// scaleUnit maps x in [0, 1) to an offset in [0, width). The clamp guards
// against float64(width) rounding up for widths beyond 2^53.
func scaleUnit(width int64, x float64) int64 {
	k := int64(float64(width) * x)
	return max(0, min(k, width-1))
}

// exponential returns an offset in [0, width) whose density decreases
// exponentially, the cut-off at width having density exp(-param)
// relative to 0 (pgbench's getExponentialRand).
func (st *State) exponential(width int64, param float64) int64 {
	cut := math.Exp(-param)
	u := 1 - st.r.Float64() // in (0, 1]
	x := -math.Log(cut+(1-cut)*u) / param
	return scaleUnit(width, x)
}

// gaussian returns an offset in [0, width) from a normal distribution
// centred on the middle, truncated at param standard deviations either side
// (pgbench's getGaussianRand). With param >= 2 a redraw is needed less than
// 5% of the time.
func (st *State) gaussian(width int64, param float64) int64 {
	var z float64
	for {
		z = st.r.NormFloat64()
		if z >= -param && z < param {
			break
		}
	}
	return scaleUnit(width, (z+param)/(2*param))
}

// zipfian returns an offset in [0, width) where offset k-1 is drawn
// ((k+1)/k)^s times as often as offset k, by the rejection method of
// Devroye, "Non-Uniform Random Variate Generation" (1986), p. 550-551, as
// pgbench's computeIterativeZipfian does, but without its slow corner.
func (st *State) zipfian(width int64, s float64) int64 {
	if width <= 1 {
		return 0
	}
	n := float64(width)
	b := math.Pow(2, s-1)
	// pgbench draws u in [0, 1) and rejects x > n, which for s near 1 and
	// a small n rejects all but a few in a thousand draws. Drawing u only
	// from [lowU, 1), where x <= n, gives the same distribution, since the
	// condition is independent of the acceptance test below.
	lowU := math.Pow(n+1, 1-s)
	for {
		u := lowU + (1-lowU)*st.r.Float64()
		v := st.r.Float64()
		x := math.Floor(math.Pow(u, -1/(s-1)))
		t := math.Pow(1+1/x, s-1)
		// x <= n still guards against rounding at the edge of lowU.
		if v*x*(t-1)/(b-1) <= t/b && x <= n {
			if x >= n { // float64(width) may have rounded up
				return width - 1
			}
			return int64(x) - 1
		}
	}
}

// Hash constants of pgbench.
const (
	fnvPrime      = 0x100000001b3
	fnvOffset     = 0xcbf29ce484222325
	murmurMul     = 0xc6a4a7935bd1e995
	murmurMulBy8  = 0x35253c9ade8f4ca8 // murmurMul * 8, the key length
	murmurShift   = 47
	lcgSeedFixup0 = 0x5851F42D4C957F2D
	lcgSeedFixup1 = 0x14057B7EF767814F
)

// hashFNV1a is FNV-1a over the 8 little-endian bytes of x, with the seed
// mixed into the offset basis.
func hashFNV1a(x int64, seed uint64) int64 {
	h := uint64(fnvOffset) ^ seed
	u := uint64(x)
	for range 8 {
		h ^= u & 0xff
		h *= fnvPrime
		u >>= 8
	}
	return int64(h)
}

// hashMurmur2 is MurmurHash64A of the 8 bytes of x.
func hashMurmur2(x int64, seed uint64) int64 {
	h := seed ^ murmurMulBy8
	k := uint64(x)
	k *= murmurMul
	k ^= k >> murmurShift
	k *= murmurMul
	h ^= k
	h *= murmurMul
	h ^= h >> murmurShift
	h *= murmurMul
	h ^= h >> murmurShift
	return int64(h)
}

// pgPRNG is PostgreSQL's pg_prng (xoroshiro128** seeded through
// splitmix64). permute needs exactly this generator to give pgbench's
// permutations for a given seed.
type pgPRNG struct{ s0, s1 uint64 }

func newPgPRNG(seed uint64) pgPRNG {
	splitmix := func() uint64 {
		seed += 0x9E3779B97F4A7C15
		z := seed
		z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
		z = (z ^ z>>27) * 0x94D049BB133111EB
		return z ^ z>>31
	}
	p := pgPRNG{s0: splitmix()}
	p.s1 = splitmix()
	if p.s0 == 0 && p.s1 == 0 {
		p.s0, p.s1 = lcgSeedFixup0, lcgSeedFixup1
	}
	return p
}

func (p *pgPRNG) next() uint64 {
	s0 := p.s0
	sx := p.s1 ^ s0
	v := bits.RotateLeft64(s0*5, 7) * 9
	p.s0 = bits.RotateLeft64(s0, 24) ^ sx ^ sx<<16
	p.s1 = bits.RotateLeft64(sx, 37)
	return v
}

// upTo returns a uniform value in [0, hi] by bitmask rejection.
func (p *pgPRNG) upTo(hi uint64) uint64 {
	if hi == 0 {
		return 0
	}
	shift := bits.LeadingZeros64(hi)
	for {
		if v := p.next() >> shift; v <= hi {
			return v
		}
	}
}

// permute returns the position of x (taken modulo size) in a pseudorandom
// permutation of [0, size) chosen by seed, as pgbench's permute() does: six
// rounds of an odd multiply, xor and rotate on overlapping power-of-two
// halves of the range, each followed by a random offset modulo size.
func permute(x, size, seed int64) int64 {
	if size < 2 {
		return 0
	}
	rng := newPgPRNG(uint64(seed))
	n := uint64(size)
	v := uint64(x) % n
	width := 63 - bits.LeadingZeros64(n) // largest power of two <= n is 1<<width
	mask := uint64(1)<<width - 1
	rot := func(v uint64) uint64 { return (v<<1)&mask | v>>(width-1) }
	for range 6 {
		m := rng.next()&mask | 1
		r := rng.next() & mask
		if v <= mask {
			v = rot((v*m ^ r) & mask)
		}
		m = rng.next()&mask | 1
		r = rng.next() & mask
		if t := n - 1 - v; t <= mask {
			v = n - 1 - rot((t*m^r)&mask)
		}
		v = (v + rng.upTo(n-1)) % n
	}
	return int64(v)
}
