package workload

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// directPair returns a direct connection and the other end of it, over
// loopback TCP.
func directPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	var d net.Dialer
	c, err := directDial(d.DialContext)(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*directConn); !ok {
		t.Fatalf("directDial gave a %T, want a *directConn", c)
	}
	peer, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return c, peer
}

func TestDirectConnMovesBytesBothWays(t *testing.T) {
	c, peer := directPair(t)
	// More than the socket buffers hold: the write waits for room and
	// the reads for data, the runtime's way.
	big := bytes.Repeat([]byte("pgbenchx"), 1<<20)
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(big)
		done <- err
	}()
	got := make([]byte, len(big))
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("the peer read something else than was written")
	}
	go func() {
		_, err := peer.Write(big)
		done <- err
	}()
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("peer write: %v", err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("read something else than the peer wrote")
	}
}

func TestDirectConnEnds(t *testing.T) {
	timedOut := func(t *testing.T, err error) {
		var oe *net.OpError
		if !isTimeout(err) || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &oe) || oe.Op != "read" {
			t.Errorf("err = %v, want a read timeout", err)
		}
	}
	tests := []struct {
		name     string
		deadline time.Duration // from now; 0: the test's own bound
		setup    func(c, peer net.Conn)
		check    func(t *testing.T, err error)
	}{
		{"deadline passes while waiting", 20 * time.Millisecond, nil, timedOut},
		{"deadline already passed", -time.Second, nil, timedOut},
		{"peer closes", 0, func(_, peer net.Conn) { peer.Close() }, func(t *testing.T, err error) {
			if err != io.EOF {
				t.Errorf("err = %v, want io.EOF", err)
			}
		}},
		{"peer resets", 0, func(_, peer net.Conn) {
			_ = peer.(*net.TCPConn).SetLinger(0)
			peer.Close()
		}, func(t *testing.T, err error) {
			var oe *net.OpError
			if !errors.As(err, &oe) || oe.Op != "read" || isTimeout(err) {
				t.Errorf("err = %v, want a read error that is not a timeout", err)
			}
		}},
		{"closed here", 0, func(c, _ net.Conn) { c.Close() }, func(t *testing.T, err error) {
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("err = %v, want net.ErrClosed", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, peer := directPair(t)
			d := tt.deadline
			if d == 0 {
				d = 5 * time.Second
			}
			_ = c.SetDeadline(time.Now().Add(d))
			if tt.setup != nil {
				tt.setup(c, peer)
			}
			n, err := c.Read(make([]byte, 16))
			if n != 0 {
				t.Errorf("read %d bytes, want none", n)
			}
			tt.check(t, err)
		})
	}
}

func TestDirectConnWriteFails(t *testing.T) {
	c, peer := directPair(t)
	_ = peer.(*net.TCPConn).SetLinger(0)
	peer.Close() // reset: the writes fail once the reset has come back
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		_, err = c.Write([]byte("x"))
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" || isTimeout(err) {
		t.Errorf("err = %v, want a write error that is not a timeout", err)
	}
}
