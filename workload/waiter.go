package workload

import (
	"context"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// waiter sleeps an open-loop client until its next slot is due. A Go
// timer parked in the netpoller wakes in whole milliseconds (the poller
// waits in ms), which lands up to a millisecond of the generator's own
// lateness in every read's latency. A timerfd is a kernel hrtimer whose
// expiry makes the fd readable: the netpoller wakes for it at once, so a
// slot starts within tens of microseconds of its due time, with no
// spinning.
type waiter struct {
	f     *os.File // the timerfd, read through the netpoller; nil: fall back to time.Timer
	buf   [8]byte
	timer *time.Timer
}

func newWaiter() *waiter {
	w := &waiter{}
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err == nil {
		w.f = os.NewFile(uintptr(fd), "timerfd")
	}
	return w
}

// until waits until due, or until ctx ends or wake is called; it says
// whether due came.
func (w *waiter) until(ctx context.Context, due time.Time) bool {
	d := time.Until(due)
	if d <= 0 {
		return true
	}
	if w.f != nil {
		spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
		if err := unix.TimerfdSettime(int(w.f.Fd()), 0, &spec, nil); err == nil {
			_, err := w.f.Read(w.buf[:])
			return err == nil && ctx.Err() == nil
		}
	}
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		w.timer.Reset(d)
	}
	select {
	case <-ctx.Done():
		w.timer.Stop()
		return false
	case <-w.timer.C:
		return true
	}
}

// wake ends a wait now: the phase is over.
func (w *waiter) wake() {
	if w.f != nil {
		_ = w.f.SetReadDeadline(time.Now())
	}
}

func (w *waiter) close() {
	if w.f != nil {
		_ = w.f.Close()
	}
}
