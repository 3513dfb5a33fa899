package workload

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"github.com/jackc/pgx/v5/pgconn"
)

// directConn is a read connection's socket whose reads and writes make
// the system call straight, as pgbench does, waiting in the Go runtime's
// network poller (with the deadlines) only when the call would block.
// The socket is non-blocking, so the call itself never waits; what it
// skips is the runtime's bookkeeping around a system call that might
// block. Here that costs more than the call's own entry: a write on
// loopback wakes the server's backend, which often takes the CPU from
// the client before the call returns, and a thread that long "in a
// system call" has its scheduler slot handed to another thread by the
// runtime's monitor (a futex wake, a context switch, and more to get a
// slot back). Measured on a 2-core host, 8 clients (issue 9): the
// monitor's sleeps fell from 18k to 2.4k and futex calls by half in 6 s,
// context switches per read from 1.0 to 0.96 (pgbench: 0.86).
type directConn struct {
	net.Conn
	raw     syscall.RawConn
	network string // as dialed, for errors
	// Each direction's buffer and result, for its function below (made
	// once, so that a read or write allocates nothing). A read and a write
	// may run at once (pgconn's background reader), never two reads.
	rbuf, wbuf     []byte
	rn, wn         int
	rerrno, werrno syscall.Errno
	readFn         func(fd uintptr) bool
	writeFn        func(fd uintptr) bool
}

// directDial wraps dial so that TCP and Unix connections are direct.
func directDial(dial pgconn.DialFunc) pgconn.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		sc, ok := c.(syscall.Conn)
		if !ok {
			return c, nil
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			return c, nil
		}
		d := &directConn{Conn: c, raw: raw, network: network}
		d.readFn = d.read
		d.writeFn = d.write
		return d, nil
	}
}

// read is one read(2) into rbuf: false when it would block.
func (d *directConn) read(fd uintptr) bool {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&d.rbuf[0])), uintptr(len(d.rbuf)))
		if errno == syscall.EINTR {
			continue
		}
		d.rn, d.rerrno = int(n), errno
		return errno != syscall.EAGAIN
	}
}

// write writes wbuf from wn on: false while some is left and the socket
// takes no more.
func (d *directConn) write(fd uintptr) bool {
	for d.wn < len(d.wbuf) {
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&d.wbuf[d.wn])), uintptr(len(d.wbuf)-d.wn))
		switch errno {
		case 0:
			d.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			d.werrno = errno
			return true
		}
	}
	return true
}

// Read reads what the socket holds, waiting for something if need be.
func (d *directConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	d.rbuf = b
	err := d.raw.Read(d.readFn) // a deadline that passes ends the wait
	d.rbuf = nil
	switch {
	case err != nil:
		return 0, d.opError("read", err)
	case d.rerrno != 0:
		return 0, d.opError("read", os.NewSyscallError("read", d.rerrno))
	case d.rn == 0:
		return 0, io.EOF
	}
	return d.rn, nil
}

// Write writes all of b, waiting for room if need be.
func (d *directConn) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	d.wbuf, d.wn, d.werrno = b, 0, 0
	err := d.raw.Write(d.writeFn)
	n := d.wn
	d.wbuf = nil
	switch {
	case err != nil:
		err = d.opError("write", err)
	case d.werrno != 0:
		err = d.opError("write", os.NewSyscallError("write", d.werrno))
	}
	return n, err
}

// opError is err as the net package's Read and Write report it (the raw
// calls' own say "raw-read", "raw-write"), for the error samples users see.
func (d *directConn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: d.network, Source: d.LocalAddr(), Addr: d.RemoteAddr(), Err: err}
}
