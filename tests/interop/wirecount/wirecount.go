// Package wirecount wraps memberlist's NetTransport to count the bytes the
// Go interop peers put on and take off the wire. Both peers
// (tests/interop/peer and tests/interop/networkdb-peer) use it.
package wirecount

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Stats counts payload bytes handed to and received from the sockets.
// Labels, encryption, compression and CRC are all applied above the
// transport, so these are the bytes on the wire (minus IP/UDP/TCP headers).
type Stats struct {
	UDPSent, UDPRecv, TCPSent, TCPRecv atomic.Uint64
}

// Event is the peers' `stats` JSON event.
func (s *Stats) Event() map[string]any {
	return map[string]any{
		"ev":       "stats",
		"udp_sent": s.UDPSent.Load(),
		"udp_recv": s.UDPRecv.Load(),
		"tcp_sent": s.TCPSent.Load(),
		"tcp_recv": s.TCPRecv.Load(),
	}
}

// Transport is a memberlist transport that counts bytes and otherwise
// passes everything to the NetTransport inside.
type Transport struct {
	inner    *memberlist.NetTransport
	stats    *Stats
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// New wraps inner; its counts go to stats.
func New(inner *memberlist.NetTransport, stats *Stats) *Transport {
	t := &Transport{
		inner:    inner,
		stats:    stats,
		packetCh: make(chan *memberlist.Packet),
		streamCh: make(chan net.Conn),
		done:     make(chan struct{}),
	}
	go t.relayPackets()
	go t.relayStreams()
	return t
}

func (t *Transport) relayPackets() {
	for {
		select {
		case p := <-t.inner.PacketCh():
			t.stats.UDPRecv.Add(uint64(len(p.Buf)))
			select {
			case t.packetCh <- p:
			case <-t.done:
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *Transport) relayStreams() {
	for {
		select {
		case c := <-t.inner.StreamCh():
			select {
			case t.streamCh <- &conn{Conn: c, stats: t.stats}:
			case <-t.done:
				_ = c.Close()
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *Transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *Transport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	ts, err := t.inner.WriteToAddress(b, addr)
	if err == nil {
		t.stats.UDPSent.Add(uint64(len(b)))
	}
	return ts, err
}

func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *Transport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.inner.DialAddressTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, stats: t.stats}, nil
}

func (t *Transport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown stops the relays and shuts the inner transport down. The inner
// listeners hand each packet and connection over an unbuffered channel and
// wait for it to be taken, and the inner Shutdown waits for the listeners;
// so whatever arrives while it runs is drained here, or Shutdown would hang.
func (t *Transport) Shutdown() error {
	close(t.done)
	finished := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.inner.PacketCh():
			case c := <-t.inner.StreamCh():
				_ = c.Close()
			case <-finished:
				return
			}
		}
	}()
	err := t.inner.Shutdown()
	close(finished)
	return err
}

// conn counts the bytes of one TCP stream in both directions.
type conn struct {
	net.Conn
	stats *Stats
}

func (c *conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.stats.TCPRecv.Add(uint64(n))
	return n, err
}

func (c *conn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.stats.TCPSent.Add(uint64(n))
	return n, err
}
