package main

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// wireStats counts payload bytes handed to and received from the sockets.
// Labels, encryption, compression and CRC are all applied above the
// transport, so these are the bytes on the wire (minus IP/UDP/TCP headers).
type wireStats struct {
	udpSent, udpRecv, tcpSent, tcpRecv atomic.Uint64
}

func (s *wireStats) event() obj {
	return obj{
		"ev":       "stats",
		"udp_sent": s.udpSent.Load(),
		"udp_recv": s.udpRecv.Load(),
		"tcp_sent": s.tcpSent.Load(),
		"tcp_recv": s.tcpRecv.Load(),
	}
}

// countingTransport wraps memberlist's NetTransport and counts bytes.
type countingTransport struct {
	inner    *memberlist.NetTransport
	stats    *wireStats
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}
}

var _ memberlist.NodeAwareTransport = (*countingTransport)(nil)

func newCountingTransport(inner *memberlist.NetTransport, stats *wireStats) *countingTransport {
	t := &countingTransport{
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

func (t *countingTransport) relayPackets() {
	for {
		select {
		case p := <-t.inner.PacketCh():
			t.stats.udpRecv.Add(uint64(len(p.Buf)))
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

func (t *countingTransport) relayStreams() {
	for {
		select {
		case c := <-t.inner.StreamCh():
			select {
			case t.streamCh <- &countingConn{Conn: c, stats: t.stats}:
			case <-t.done:
				_ = c.Close()
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *countingTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *countingTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	ts, err := t.inner.WriteToAddress(b, addr)
	if err == nil {
		t.stats.udpSent.Add(uint64(len(b)))
	}
	return ts, err
}

func (t *countingTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *countingTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.inner.DialAddressTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, stats: t.stats}, nil
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streamCh }

func (t *countingTransport) Shutdown() error {
	close(t.done)
	return t.inner.Shutdown()
}

// countingConn counts the bytes of one TCP stream in both directions.
type countingConn struct {
	net.Conn
	stats *wireStats
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.stats.tcpRecv.Add(uint64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.stats.tcpSent.Add(uint64(n))
	return n, err
}
