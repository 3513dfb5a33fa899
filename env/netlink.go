package env

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pgbenchx/pgbenchx/input"
)

// Link is a slow network link in front of a standby (env up --net-delay,
// --net-bandwidth): both of its links go through a proxy of the env's
// (toxiproxy), the clients' connections to it and its own replication
// connection to its upstream, so read latency and replication lag both
// feel the link. This kernel has no netem, so the delay is the proxy's.
type Link struct {
	// Delay is added to every round trip, half each way; Jitter makes
	// each way's half vary by up to half of it.
	Delay  time.Duration `json:"delay,omitempty"`
	Jitter time.Duration `json:"jitter,omitempty"`
	// RateKBps caps each direction, in KB/s (toxiproxy's unit); 0: none.
	RateKBps int64 `json:"rate_kbps,omitempty"`
	// ClientPort is the proxy clients reach the standby through (its
	// DSN's port); ReplPort the one its primary_conninfo names, which
	// forwards to its upstream.
	ClientPort int `json:"client_port,omitempty"`
	ReplPort   int `json:"repl_port,omitempty"`
}

// String says what the link does: "+30ms ±5ms round trip, 10 Mbit/s".
func (l Link) String() string {
	var parts []string
	if l.Delay > 0 {
		s := "+" + l.Delay.String()
		if l.Jitter > 0 {
			s += " ±" + l.Jitter.String()
		}
		parts = append(parts, s+" round trip")
	}
	if l.RateKBps > 0 {
		parts = append(parts, strconv.FormatFloat(float64(l.RateKBps)*8/1000, 'g', 4, 64)+" Mbit/s each way")
	}
	return strings.Join(parts, ", ")
}

// MaxNetDelay bounds --net-delay: beyond it every read times out.
const MaxNetDelay = 10 * time.Second

var delayRE = regexp.MustCompile(`^([^±+]+?)\s*(?:(?:±|\+-|\+/-)\s*(.+))?$`)

// ParseNetDelays reads --net-delay: standby2=50ms, or standby2=50ms±10ms
// (also 50ms+-10ms), repeatable or comma-separated.
func ParseNetDelays(specs []string, links map[string]Link) error {
	const want = "want standbyN=DELAY[±JITTER], e.g. standby2=50ms or standby2=50ms±10ms (1ms to 10s, whole ms)"
	return eachItem(specs, "net-delay", want, links, func(l *Link, val string) bool {
		m := delayRE.FindStringSubmatch(val)
		if m == nil {
			return false
		}
		d, err := time.ParseDuration(strings.TrimSpace(m[1]))
		if err != nil || d < time.Millisecond || d > MaxNetDelay || d%time.Millisecond != 0 {
			return false
		}
		var j time.Duration
		if m[2] != "" {
			if j, err = time.ParseDuration(strings.TrimSpace(m[2])); err != nil || j < 0 || j > d || j%time.Millisecond != 0 {
				return false
			}
		}
		l.Delay, l.Jitter = d, j
		return true
	})
}

var rateRE = regexp.MustCompile(`(?i)^([0-9]+(?:\.[0-9]+)?)\s*(kbit|mbit|gbit)$`)

// ParseNetBandwidths reads --net-bandwidth: standby2=10mbit (kbit, mbit,
// gbit: powers of 1000, as network rates are given).
func ParseNetBandwidths(specs []string, links map[string]Link) error {
	const want = "want standbyN=RATE with kbit, mbit or gbit, e.g. standby2=10mbit (8kbit to 100gbit)"
	return eachItem(specs, "net-bandwidth", want, links, func(l *Link, val string) bool {
		m := rateRE.FindStringSubmatch(val)
		if m == nil {
			return false
		}
		x, _ := strconv.ParseFloat(m[1], 64)
		bits := x * map[string]float64{"kbit": 1e3, "mbit": 1e6, "gbit": 1e9}[strings.ToLower(m[2])]
		if bits < 8000 || bits > 100e9 {
			return false
		}
		kbps := int64(math.Round(bits / 8 / 1000)) // toxiproxy's unit: whole KB/s
		l.RateKBps = kbps
		return true
	})
}

// eachItem parses node=value items into links.
func eachItem(specs []string, flag, want string, links map[string]Link, set func(*Link, string) bool) error {
	return standbyItems(specs, flag, want, func(node, val, item string) error {
		l := links[node]
		if !set(&l, val) {
			return input.Bad(flag, item, want)
		}
		links[node] = l
		return nil
	})
}

// standbyItems reads a flag's standbyN=VALUE items, repeated or
// comma-separated, refusing what is not a standby's name and a standby
// given twice; set takes each item's node and value.
func standbyItems(specs []string, flag, want string, set func(node, val, item string) error) error {
	seen := map[string]bool{}
	for _, spec := range specs {
		for _, item := range strings.Split(spec, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			node, val, ok := strings.Cut(item, "=")
			node = strings.TrimSpace(node)
			if !ok {
				return input.Bad(flag, item, want)
			}
			if !standbyRE.MatchString(node) {
				return input.Bad(flag, item, "%q is not a standby name; %s", node, want)
			}
			if seen[node] {
				return input.Bad(flag, item, "%s is given twice", node)
			}
			seen[node] = true
			if err := set(node, strings.TrimSpace(val), item); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkLinks refuses links on standbys the env will not have.
func checkLinks(links map[string]Link, standbys int) error {
	for n, l := range links {
		if i, _ := strconv.Atoi(strings.TrimPrefix(n, "standby")); i > standbys {
			flag := "net-delay"
			if l.Delay == 0 {
				flag = "net-bandwidth"
			}
			return input.Bad(flag, n, "this env has standby1..standby%d", standbys)
		}
	}
	return nil
}

// halves splits a round-trip figure into the two directions' shares,
// in whole ms (toxiproxy's unit): downstream takes the odd ms.
func halves(d time.Duration) (down, up int64) {
	ms := d.Milliseconds()
	return ms - ms/2, ms / 2
}
