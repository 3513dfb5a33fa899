package probe

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgbenchx/pgbenchx/metrics"
)

// CPUMeter measures, over a phase, the CPU this process used and the CPU
// the whole host was busy: on one host the load generator and every server
// share the cores, and a report must say when that, not the cluster, set
// the numbers.
type CPUMeter struct {
	wall      time.Time
	self      time.Duration
	busy, all uint64
	ok        bool
}

// StartCPU takes the first reading.
func StartCPU() *CPUMeter {
	m := &CPUMeter{wall: time.Now(), self: selfCPU()}
	m.busy, m.all, m.ok = hostJiffies()
	return m
}

// Stop returns the phase's CPU use.
func (m *CPUMeter) Stop() metrics.CPU {
	wall := time.Since(m.wall).Seconds()
	c := metrics.CPU{Cores: runtime.NumCPU()}
	if wall <= 0 {
		return c
	}
	c.LoadGenCores = (selfCPU() - m.self).Seconds() / wall
	if busy, all, ok := hostJiffies(); ok && m.ok && all > m.all {
		c.HostBusyCores = float64(busy-m.busy) / float64(all-m.all) * float64(c.Cores)
	}
	c.ServerCores = max(0, c.HostBusyCores-c.LoadGenCores)
	// The thresholds leave room for measurement noise: a generator using
	// most of the machine, or a machine with no idle left.
	c.LoadGenBound = c.LoadGenCores >= 0.6*float64(c.Cores)
	c.HostSaturated = c.HostBusyCores >= 0.9*float64(c.Cores)
	return c
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// hostJiffies reads the aggregate line of /proc/stat: busy and total.
func hostJiffies() (busy, all uint64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, false
	}
	// user nice system idle iowait irq softirq steal; guest time is already in user.
	for i, s := range f[1:min(len(f), 9)] {
		v, _ := strconv.ParseUint(s, 10, 64)
		all += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, all, true
}
