package probe

import (
	"testing"
	"time"
)

func TestHeartbeatLagBounds(t *testing.T) {
	h := &Heartbeat{interval: 100 * time.Millisecond}
	base := time.Unix(1000, 0)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	// Beat k is sent at k*100 ms and its commit returns 2 ms later.
	for seq := int64(1); seq <= 5; seq++ {
		h.sent[seq%hbRing].Store(at(int(seq) * 100).UnixNano())
		h.done[seq%hbRing].Store(at(int(seq)*100 + 2).UnixNano())
		h.latest.Store(seq)
	}
	tests := []struct {
		seen, latest int64
		send, recv   time.Time
		lo, hi       time.Duration
	}{
		// Shows the newest beat: at least 0 behind, at most since that beat was sent.
		{5, 5, at(510), at(511), 0, 11 * time.Millisecond},
		// Misses beat 5 (returned at 502): at least 8 ms behind; has beat 4 (sent at 400): at most 111.
		{4, 5, at(510), at(511), 8 * time.Millisecond, 111 * time.Millisecond},
		// Misses 3..5: at least since beat 3 returned (302).
		{2, 5, at(510), at(511), 208 * time.Millisecond, 311 * time.Millisecond},
		// Beat 5 had not returned when the standby was asked: not a miss.
		{4, 4, at(501), at(503), 0, 103 * time.Millisecond},
	}
	for _, tt := range tests {
		lo, hi, ok := h.Lag(tt.seen, tt.latest, tt.send, tt.recv)
		if !ok || lo != tt.lo || hi != tt.hi {
			t.Errorf("Lag(seen %d, latest %d) = %v..%v, %v; want %v..%v", tt.seen, tt.latest, lo, hi, ok, tt.lo, tt.hi)
		}
	}
	if _, _, ok := h.Lag(5-hbRing, 5, at(510), at(511)); ok {
		t.Error("a seq older than the ring is reported as known")
	}
	// The heartbeat stalled: reads cannot be judged fresh any more.
	if h.Fresh(at(1000)) {
		t.Error("a heartbeat silent for 0.5 s is reported fresh")
	}
	if !h.Fresh(at(520)) {
		t.Error("a heartbeat that beat 18 ms ago is reported stalled")
	}
}
