package workload

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestWaiter(t *testing.T) {
	ctx := context.Background()
	w := newWaiter()
	defer w.close()
	if w.f == nil {
		t.Skip("no timerfd here: the time.Timer fallback")
	}
	// Due: it wakes at the due time, never before, and at least once in
	// five tries within a millisecond after it (a shared host stalls
	// threads now and then; a timer that always woke late, as a Go timer
	// in the poller does, rounded to whole milliseconds, would not).
	best := time.Hour
	for range 5 {
		due := time.Now().Add(2*time.Millisecond + 300*time.Microsecond)
		if !w.until(ctx, due) {
			t.Fatal("until reported a wake before due")
		}
		late := time.Since(due)
		if late < 0 {
			t.Fatalf("woke %v before due", -late)
		}
		best = min(best, late)
	}
	if best > time.Millisecond {
		t.Errorf("woke at best %v after due, want within 1ms", best)
	}
	// Its reads wait in the netpoller, not in the kernel on a thread of
	// their own (where wake's deadline would not reach them).
	if fl, err := unix.FcntlInt(w.f.Fd(), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Errorf("the timerfd is blocking (flags %#x, %v)", fl, err)
	}
	// The phase's end: wake cuts a long wait short.
	{
		done := make(chan bool, 1)
		go func() { done <- w.until(ctx, time.Now().Add(time.Minute)) }()
		deadline := time.After(10 * time.Second)
		woken := false
		for !woken {
			w.wake()
			select {
			case got := <-done:
				if got {
					t.Error("until said due after a wake")
				}
				woken = true
			case <-time.After(10 * time.Millisecond):
			case <-deadline:
				t.Fatal("wake did not end a wait within 10 s")
			}
		}
	}
}
