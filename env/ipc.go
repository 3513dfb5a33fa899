package env

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A server that is SIGKILLed leaves behind what its own exit would have
// removed: its small System V segment and its POSIX dynamic shared memory
// segments in /dev/shm (on PostgreSQL 15 a control segment and a 1 MiB
// one, held in RAM). The next start of the same data folder removes them;
// a folder removed after a kill would leak them, some RAM per fault.
// cleanShm does what that start would: it finds the System V segment from
// postmaster.pid, checks it is this folder's (PostgreSQL's own header:
// magic, device and inode of the data folder) and that nothing is attached,
// reads the dynamic shared memory control segment it names, removes every
// segment listed there, the control segment and the System V segment.

const (
	pgShmemMagic      = 679834894  // PGShmemMagic
	pgDSMControlMagic = 0x9a503d32 // PG_DYNSHMEM_CONTROL_MAGIC
)

// cleanShm removes a crashed server's shared memory; a no-op after a
// clean exit (no postmaster.pid, or no segment) or while anything is
// still attached.
func cleanShm(dataDir string) error {
	shmid := shmidOf(dataDir)
	if shmid < 0 {
		return nil
	}
	var d unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(shmid, unix.IPC_STAT, &d); err != nil || d.Nattch > 0 {
		return nil
	}
	hdr, err := unix.SysvShmAttach(shmid, 0, unix.SHM_RDONLY)
	if err != nil {
		return nil
	}
	var st syscall.Stat_t
	statErr := syscall.Stat(dataDir, &st)
	ours := len(hdr) >= 56 && binary.NativeEndian.Uint32(hdr[0:]) == pgShmemMagic && statErr == nil &&
		binary.NativeEndian.Uint64(hdr[40:]) == st.Dev && binary.NativeEndian.Uint64(hdr[48:]) == st.Ino
	var control uint32
	if ours {
		control = binary.NativeEndian.Uint32(hdr[24:])
	}
	_ = unix.SysvShmDetach(hdr)
	if !ours {
		return nil // another server's segment under a recycled id
	}
	var errs []error
	if control != 0 {
		errs = append(errs, removeDSM(control))
	}
	if _, err := unix.SysvShmCtl(shmid, unix.IPC_RMID, nil); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EIDRM) {
		errs = append(errs, fmt.Errorf("remove System V segment %d: %w", shmid, err))
	}
	return errors.Join(errs...)
}

// shmidOf reads the System V segment id from line 7 of postmaster.pid.
func shmidOf(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return -1
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return -1
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		return -1
	}
	id, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return id
}

func dsmPath(handle uint32) string {
	return "/dev/shm/PostgreSQL." + strconv.FormatUint(uint64(handle), 10)
}

// removeDSM removes the segments a control segment lists as in use, then
// the control segment. Its layout (dsm.c): a header of magic, nitems and
// maxitems, then maxitems items from offset 16 of 40 bytes (PostgreSQL
// 14+: handle, refcnt, first_page, npages, a pointer, pinned) or 24 bytes
// (12, 13: no pages); the file's size tells which.
func removeDSM(control uint32) error {
	path := dsmPath(control)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(b) >= 16 && binary.NativeEndian.Uint32(b[0:]) == pgDSMControlMagic {
		nitems := int(binary.NativeEndian.Uint32(b[4:]))
		maxitems := int(binary.NativeEndian.Uint32(b[8:]))
		for _, size := range []int{40, 24} {
			if len(b) != 16+maxitems*size || nitems > maxitems {
				continue
			}
			for i := 0; i < nitems; i++ {
				item := b[16+i*size:]
				handle, refcnt := binary.NativeEndian.Uint32(item[0:]), binary.NativeEndian.Uint32(item[4:])
				// Handles in the main shared memory area (odd) have no file.
				if refcnt > 0 && handle != 0 {
					if err := os.Remove(dsmPath(handle)); err != nil && !errors.Is(err, fs.ErrNotExist) {
						return err
					}
				}
			}
			break
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// strays lists PostgreSQL processes working in a data folder (postgres
// processes chdir there) that are not under a live postmaster: a
// postmaster killed by someone else leaves its backends running, or
// stopped, for a while. Only processes of the folder's owner whose
// executable is postgres count: a user's shell that cd'd into the folder
// to read a log is not ours to kill. Call it only when the folder's
// postmaster is gone.
func strays(dataDir string) []proc {
	if dataDir == "" {
		return nil
	}
	owner := -1
	if st, err := os.Stat(dataDir); err == nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			owner = int(sys.Uid)
		}
	}
	if r, err := filepath.EvalSymlinks(dataDir); err == nil {
		dataDir = r // what /proc/PID/cwd shows
	}
	var out []proc
	for _, pid := range pids() {
		if cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd"); err == nil && cwd == dataDir && isPostgres(pid, owner) {
			if p, ok := procOf(pid); ok && p.alive() {
				out = append(out, p)
			}
		}
	}
	return out
}

// isPostgres says whether process pid runs as uid (when known, >= 0) and
// its executable is a postgres server binary.
func isPostgres(pid, uid int) bool {
	if uid >= 0 {
		st, err := os.Stat("/proc/" + strconv.Itoa(pid))
		if err != nil {
			return false
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); !ok || int(sys.Uid) != uid {
			return false
		}
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return false
	}
	return filepath.Base(strings.TrimSuffix(exe, " (deleted)")) == "postgres"
}
