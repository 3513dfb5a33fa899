package env

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// proc is a process as /proc shows it; its start time (in clock ticks
// since boot) tells it apart from a later process given the same pid.
type proc struct {
	pid   int
	start uint64
}

// statFields reads a process's (or a thread's) stat file, path, and
// returns its fields after the command name, from the state letter on:
// [0] state, [1] ppid, [2] pgrp, [3] session, ... [19] start time. Fewer
// than 20 (none) when it is gone.
func statFields(path string) [][]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	// "pid (comm) S ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return nil
	}
	return bytes.Fields(b[i+2:])
}

// procStat reads a process's state letter, parent and start time from
// /proc/PID/stat. ok is false when there is no such process.
func procStat(pid int) (state byte, ppid int, start uint64, ok bool) {
	f := statFields("/proc/" + strconv.Itoa(pid) + "/stat")
	if len(f) < 20 {
		return 0, 0, 0, false
	}
	ppid, _ = strconv.Atoi(string(f[1]))
	start, _ = strconv.ParseUint(string(f[19]), 10, 64)
	return f[0][0], ppid, start, true
}

// pids lists the processes /proc shows now.
func pids() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

func procOf(pid int) (proc, bool) {
	_, _, start, ok := procStat(pid)
	return proc{pid, start}, ok
}

// state is the process's state letter, 0 when it is gone or its pid now
// belongs to another process. A zombie (Z) or dead (X) process has exited.
func (p proc) state() byte {
	st, _, start, ok := procStat(p.pid)
	if !ok || start != p.start {
		return 0
	}
	return st
}

func (p proc) alive() bool {
	st := p.state()
	return st != 0 && st != 'Z' && st != 'X'
}

// stopped: by SIGSTOP (T), or under a tracer (t).
func (p proc) stopped() bool {
	st := p.state()
	return st == 'T' || st == 't'
}

// descendants lists every process under root (children, theirs, ...),
// read from /proc at this moment.
func descendants(root int) []proc {
	children := map[int][]proc{}
	for _, pid := range pids() {
		if _, ppid, start, ok := procStat(pid); ok {
			children[ppid] = append(children[ppid], proc{pid, start})
		}
	}
	var out []proc
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c.pid)
		}
	}
	return out
}

func signal(p proc, sig syscall.Signal) error {
	if p.state() == 0 {
		return nil // gone, or the pid is another process's now
	}
	if err := syscall.Kill(p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %v to pid %d: %w", sig, p.pid, err)
	}
	return nil
}

// waitFor polls cond every pollEvery until it holds or d has passed.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollEvery)
	}
	return true
}

// frozenProcs remembers, per data folder, the processes Freeze stopped,
// so that Thaw resumes exactly those even if they left the postmaster's
// tree since (their postmaster killed meanwhile).
var frozenProcs = struct {
	sync.Mutex
	m map[string][]proc
}{m: map[string][]proc{}}

// freezeTree stops a postmaster (first, so it forks nothing new) and then
// every process under it, looking again until a pass finds none running,
// and waits until the kernel shows each one stopped.
func freezeTree(dataDir string, pm proc) error {
	if err := signal(pm, syscall.SIGSTOP); err != nil {
		return err
	}
	seen := map[proc]bool{pm: true}
	all := []proc{pm}
	for pass := 0; pass < 10; pass++ {
		found := false
		for _, p := range descendants(pm.pid) {
			if seen[p] {
				continue
			}
			seen[p], found = true, true
			all = append(all, p)
			if err := signal(p, syscall.SIGSTOP); err != nil {
				return err
			}
		}
		if !found {
			break
		}
	}
	frozenProcs.Lock()
	for _, p := range frozenProcs.m[dataDir] {
		if !seen[p] { // a second Freeze: keep what the first stopped
			all = append(all, p)
		}
	}
	frozenProcs.m[dataDir] = all
	frozenProcs.Unlock()
	ok := waitFor(5*time.Second, func() bool {
		for _, p := range all {
			if p.alive() && !p.stopped() {
				return false
			}
		}
		return true
	})
	if !ok {
		return fmt.Errorf("processes of pid %d not all stopped after 5s", pm.pid)
	}
	return nil
}

// thawTree resumes what Freeze remembered for this data folder, the
// postmaster and every process under it now (stopped by a Freeze in
// another process), and waits until none of them is stopped.
func thawTree(dataDir string, pm proc) error {
	frozenProcs.Lock()
	todo := frozenProcs.m[dataDir]
	delete(frozenProcs.m, dataDir)
	frozenProcs.Unlock()
	if pm.pid > 0 {
		// Every one of them, stopped or not: SIGCONT also discards a
		// SIGSTOP sent but not yet taken (the process not in state T yet),
		// which would otherwise stop it for good just after we looked.
		// Postgres ignores SIGCONT.
		todo = append(todo, descendants(pm.pid)...)
		todo = append(todo, pm)
	}
	var errs []error
	for _, p := range todo {
		errs = append(errs, signal(p, syscall.SIGCONT))
	}
	ok := waitFor(5*time.Second, func() bool {
		for _, p := range todo {
			if p.stopped() {
				return false
			}
		}
		return true
	})
	if !ok {
		errs = append(errs, fmt.Errorf("processes of pid %d still stopped 5s after SIGCONT", pm.pid))
	}
	return errors.Join(errs...)
}

// killTree SIGKILLs a postmaster, then every process under it or working
// in its data folder (listed before the postmaster dies, since they then
// leave its tree), waits until all of them are gone, and removes the
// shared memory segments they leave behind.
func killTree(dataDir string, pm proc) error {
	procs := append([]proc{pm}, descendants(pm.pid)...)
	procs = append(procs, strays(dataDir)...)
	frozenProcs.Lock()
	procs = append(procs, frozenProcs.m[dataDir]...)
	delete(frozenProcs.m, dataDir)
	frozenProcs.Unlock()
	var errs []error
	for _, p := range procs {
		errs = append(errs, signal(p, syscall.SIGKILL))
	}
	// Children forked in the instant before the postmaster died.
	for _, p := range descendants(pm.pid) {
		errs = append(errs, signal(p, syscall.SIGKILL))
		procs = append(procs, p)
	}
	ok := waitFor(10*time.Second, func() bool {
		for _, p := range procs {
			if p.alive() {
				return false
			}
		}
		return true
	})
	if !ok {
		return errors.Join(append(errs, fmt.Errorf("processes of pid %d alive 10s after SIGKILL", pm.pid))...)
	}
	errs = append(errs, cleanShm(dataDir))
	return errors.Join(errs...)
}

// clearStrays ends the processes left working in a data folder whose
// postmaster is gone (call it only then): resumed in case they were
// frozen, given grace to notice their postmaster's death and exit, then
// killed; then the shared memory of the crashed server is removed. Left
// alone they hold the old shared memory, and the server would not start
// again.
func clearStrays(dataDir string, grace time.Duration) error {
	ps := strays(dataDir)
	if len(ps) == 0 {
		return cleanShm(dataDir)
	}
	gone := func() bool {
		for _, p := range ps {
			if p.alive() {
				return false
			}
		}
		return true
	}
	var errs []error
	for _, p := range ps {
		errs = append(errs, signal(p, syscall.SIGCONT))
	}
	if !waitFor(grace, gone) {
		for _, p := range ps {
			errs = append(errs, signal(p, syscall.SIGKILL))
		}
		if !waitFor(5*time.Second, gone) {
			return errors.Join(append(errs, fmt.Errorf("%d processes in %s alive 5s after SIGKILL", len(ps), dataDir))...)
		}
	}
	errs = append(errs, cleanShm(dataDir))
	return errors.Join(errs...)
}
