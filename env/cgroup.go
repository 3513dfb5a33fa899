package env

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgbenchx/pgbenchx/input"
)

// CPU caps put each node's processes in a cgroup of its own with a CFS
// quota, so on one host a node behaves like a machine of that many cores:
// the way a 1-vs-2 standby comparison on one host can show what a second
// standby buys instead of measuring co-location.

const cfsPeriodUS = 100000

// cgroupFS is where the cpu controller lives: cgroup v2's unified tree or
// v1's cpu hierarchy.
type cgroupFS struct {
	root string
	v2   bool
}

func findCgroupFS() (cgroupFS, error) {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		b, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		if strings.Contains(string(b), "cpu") {
			return cgroupFS{root: "/sys/fs/cgroup", v2: true}, nil
		}
	}
	for _, d := range []string{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"} {
		if _, err := os.Stat(filepath.Join(d, "cpu.cfs_quota_us")); err == nil {
			return cgroupFS{root: d}, nil
		}
	}
	return cgroupFS{}, errors.New("no cgroup cpu controller found (looked for cgroup v2 at /sys/fs/cgroup and v1 at /sys/fs/cgroup/cpu)")
}

// MinMemory is the least --memory a node may be given.
const MinMemory = 64 << 20

// ParseMemory reads --memory: "1GB" (every node) or
// "standby1=512MB,primary=1GB", sizes 1024-based as in PostgreSQL's
// settings. The returned map uses "*" for every node.
func ParseMemory(s string) (map[string]int64, error) {
	out := map[string]int64{}
	const want = "want a size per node such as 1GB (every node) or standby1=512MB,standby2=512MB (at least 64MB)"
	s = strings.TrimSpace(s)
	if s == "" {
		return out, nil
	}
	items := []string{"*=" + s}
	if strings.Contains(s, "=") {
		items = strings.Split(s, ",")
	}
	for _, item := range items {
		node, v, _ := strings.Cut(strings.TrimSpace(item), "=")
		node = strings.TrimSpace(node)
		if node != "*" && node != "primary" && !standbyRE.MatchString(node) {
			return nil, input.Bad("memory", item, want)
		}
		n, isSize, _ := input.ParseSize(strings.TrimSpace(v))
		if !isSize || n < MinMemory {
			return nil, input.Bad("memory", strings.TrimPrefix(item, "*="), want)
		}
		if _, dup := out[node]; dup {
			return nil, input.Bad("memory", item, "%s is given twice", node)
		}
		out[node] = n
	}
	return out, nil
}

// MemoryCaps lists the memory caps of the nodes in service, in bytes.
func MemoryCaps(c *Cluster) map[string]int64 {
	out := map[string]int64{}
	for _, n := range c.Nodes() {
		if n.MemoryBytes > 0 {
			out[n.Name] = n.MemoryBytes
		}
	}
	return out
}

// ParseCPUs reads --cpus: "0.5" (every node) or "standby1=0.5,primary=1".
// The returned map uses "*" for every node.
func ParseCPUs(s string) (map[string]float64, error) {
	out := map[string]float64{}
	s = strings.TrimSpace(s)
	if s == "" {
		return out, nil
	}
	bad := func(item, why string) error {
		return input.Bad("cpus", item, "%s; want cores per node such as 0.5 (every node) or standby1=0.5,standby2=0.5", why)
	}
	parse := func(item, v string) (float64, error) {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < 0.01 || f > 1024 {
			return 0, bad(item, "cores must be a number from 0.01 to 1024")
		}
		return f, nil
	}
	if !strings.Contains(s, "=") {
		f, err := parse(s, s)
		if err != nil {
			return nil, err
		}
		out["*"] = f
		return out, nil
	}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		node, v, ok := strings.Cut(item, "=")
		node = strings.TrimSpace(node)
		if !ok || (node != "primary" && !standbyRE.MatchString(node)) {
			return nil, bad(item, "not node=cores")
		}
		if _, dup := out[node]; dup {
			return nil, bad(item, node+" is given twice")
		}
		f, err := parse(item, v)
		if err != nil {
			return nil, err
		}
		out[node] = f
	}
	return out, nil
}

// capOf is a node's cap (--cpus, --memory): its own, else every node's
// ("*"), else zero.
func capOf[T float64 | int64](caps map[string]T, node string) T {
	if v, ok := caps[node]; ok {
		return v
	}
	return caps["*"]
}

// makeCgroup creates the node's cgroup with its quota.
func makeCgroup(fs cgroupFS, env, node string, cores float64) (string, error) {
	parent := filepath.Join(fs.root, "pgbenchx")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("cgroup %s: %w (CPU caps need root and a writable cgroup cpu controller)", parent, err)
	}
	quota := int64(cores * cfsPeriodUS)
	dir := filepath.Join(parent, env+"-"+node)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("cgroup %s: %w", dir, err)
	}
	var err error
	if fs.v2 {
		// The cpu controller must be enabled for the children of every
		// ancestor; the root usually has it, our parent needs it.
		_ = os.WriteFile(filepath.Join(fs.root, "cgroup.subtree_control"), []byte("+cpu"), 0)
		_ = os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+cpu"), 0)
		err = os.WriteFile(filepath.Join(dir, "cpu.max"), fmt.Appendf(nil, "%d %d", quota, cfsPeriodUS), 0)
	} else {
		err = os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), fmt.Appendf(nil, "%d", cfsPeriodUS), 0)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), fmt.Appendf(nil, "%d", quota), 0)
		}
	}
	if err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("cgroup %s: set quota: %w", dir, err)
	}
	return dir, nil
}

// joinCgroup moves a process into the cgroup. The postmaster is moved
// right after exec, before it forks its children, so they inherit it.
func joinCgroup(dir string, pid int) error {
	return os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
}

// removeCgroup waits for the cgroup to empty (processes exit a little
// after the postmaster) and removes it.
func removeCgroup(dir string) error {
	if dir == "" {
		return nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(pollEvery)
	}
}

// Throttled returns, per capped node, the total time its quota has held
// it back, in seconds (cgroup cpu.stat).
func Throttled(c *Cluster) map[string]float64 {
	out := map[string]float64{}
	for _, n := range c.Nodes() {
		if n.Cgroup == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(n.Cgroup, "cpu.stat"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, " ")
			x, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			switch k {
			case "throttled_time": // v1, nanoseconds
				out[n.Name] = x / 1e9
			case "throttled_usec": // v2
				out[n.Name] = x / 1e6
			}
		}
	}
	return out
}

// CPUCaps lists the capped nodes and their cores.
func CPUCaps(c *Cluster) map[string]float64 {
	out := map[string]float64{}
	for _, n := range c.Nodes() {
		if n.CPUs > 0 {
			out[n.Name] = n.CPUs
		}
	}
	return out
}

func capNames(caps map[string]float64) []string { return slices.Sorted(maps.Keys(caps)) }
