package env

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A server killed with SIGKILL leaves behind what its clean exit would
// have removed: its POSIX dynamic shared memory segments in /dev/shm
// (a 1 MiB one and a small control segment on PostgreSQL 15) and its
// small System V segment. A restart of the same data folder would clean
// them up; a folder removed after a kill would leak them, some RAM per
// fault. leftovers records them before a kill, and remove after it.
type leftovers struct {
	dsm   []string // /dev/shm/PostgreSQL.N
	shmid int      // -1: none
	pm    int      // the postmaster that created the System V segment
}

// leftoversOf lists the segments the processes have mapped and the System
// V segment named in the data folder's postmaster.pid.
func leftoversOf(dataDir string, pm proc, procs []proc) leftovers {
	l := leftovers{shmid: -1, pm: pm.pid}
	seen := map[string]bool{}
	for _, p := range procs {
		f, err := os.Open("/proc/" + strconv.Itoa(p.pid) + "/maps")
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 6 && strings.HasPrefix(fields[5], "/dev/shm/PostgreSQL.") && !seen[fields[5]] {
				seen[fields[5]] = true
				l.dsm = append(l.dsm, fields[5])
			}
		}
		f.Close()
	}
	// Line 7 of postmaster.pid: the System V key and id.
	if b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid")); err == nil {
		if lines := strings.Split(string(b), "\n"); len(lines) > 6 {
			if f := strings.Fields(lines[6]); len(f) == 2 {
				if id, err := strconv.Atoi(f[1]); err == nil {
					l.shmid = id
				}
			}
		}
	}
	return l
}

// remove deletes the segments once no process has them: the System V one
// only if the postmaster created it and nothing is attached.
func (l leftovers) remove() error {
	for _, path := range l.dsm {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove %s: %w", path, err)
		}
	}
	if l.shmid >= 0 {
		var d unix.SysvShmDesc
		if _, err := unix.SysvShmCtl(l.shmid, unix.IPC_STAT, &d); err == nil && d.Nattch == 0 && int(d.Cpid) == l.pm {
			if _, err := unix.SysvShmCtl(l.shmid, unix.IPC_RMID, nil); err != nil {
				return fmt.Errorf("remove System V segment %d: %w", l.shmid, err)
			}
		}
	}
	return nil
}

// strays lists processes working in a data folder (postgres processes
// chdir there) that are not under a live postmaster: a postmaster killed
// by someone else leaves its backends running, or stopped, for a while.
func strays(dataDir string) []proc {
	if dataDir == "" {
		return nil
	}
	if r, err := filepath.EvalSymlinks(dataDir); err == nil {
		dataDir = r // what /proc/PID/cwd shows
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd"); err == nil && cwd == dataDir {
			if p, ok := procOf(pid); ok && p.alive() {
				out = append(out, p)
			}
		}
	}
	return out
}
