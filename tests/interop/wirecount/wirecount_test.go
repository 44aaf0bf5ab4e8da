package wirecount

import (
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// newTransport binds a NetTransport on a free loopback port and wraps it.
func newTransport(t *testing.T) (*Transport, *Stats, string) {
	t.Helper()
	inner, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{"127.0.0.1"},
		BindPort:  0,
		Logger:    log.New(io.Discard, "", 0),
	})
	if err != nil {
		t.Fatalf("bind a loopback NetTransport: %v", err)
	}
	stats := &Stats{}
	return New(inner, stats), stats, fmt.Sprintf("127.0.0.1:%d", inner.GetAutoBindPort())
}

// Shutdown must return while packets and connections keep arriving: the
// inner listeners block on their unbuffered channels once the relays have
// stopped, and the inner Shutdown waits for them. A NetworkDB Close in the
// interop tests hung here before the drain was added.
func TestShutdownReturnsUnderLoad(t *testing.T) {
	for round := 0; round < 20; round++ {
		tr, stats, addr := newTransport(t)

		stop := make(chan struct{})
		var senders sync.WaitGroup
		senders.Add(2)
		go func() { // UDP flood: bounded by count and by stop
			defer senders.Done()
			c, err := net.Dial("udp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			for i := 0; i < 200000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = c.Write([]byte("ping"))
			}
		}()
		go func() { // TCP connects: bounded likewise
			defer senders.Done()
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					_ = c.Close()
				}
			}
		}()

		// Take what the relays hand over, as memberlist does, until the
		// first packet has arrived; then shut down with traffic in flight.
		first := make(chan struct{})
		go func() {
			var once sync.Once
			for {
				select {
				case <-tr.PacketCh():
					once.Do(func() { close(first) })
				case c := <-tr.StreamCh():
					_ = c.Close()
				case <-stop:
					return
				}
			}
		}()
		select {
		case <-first:
		case <-time.After(10 * time.Second):
			close(stop)
			t.Fatalf("round %d: no packet reached the transport within 10s", round)
		}

		shut := make(chan error, 1)
		go func() { shut <- tr.Shutdown() }()
		select {
		case err := <-shut:
			if err != nil {
				t.Errorf("round %d: Shutdown: %v", round, err)
			}
		case <-time.After(10 * time.Second):
			close(stop)
			t.Fatalf("round %d: Shutdown did not return within 10s under load", round)
		}
		close(stop)
		senders.Wait()
		if stats.UDPRecv.Load() == 0 {
			t.Errorf("round %d: no UDP bytes counted", round)
		}
	}
}
