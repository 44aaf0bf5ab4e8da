package main

import (
	"sync"

	"github.com/hashicorp/memberlist"
)

// delegate implements memberlist's Delegate, EventDelegate and
// ConflictDelegate by turning every callback into an event line.
type delegate struct {
	mu    sync.Mutex
	meta  []byte
	state []byte
	queue *memberlist.TransmitLimitedQueue
}

var (
	_ memberlist.Delegate         = (*delegate)(nil)
	_ memberlist.EventDelegate    = (*delegate)(nil)
	_ memberlist.ConflictDelegate = (*delegate)(nil)
)

func (d *delegate) setMeta(b []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.meta = b
}

func (d *delegate) setState(b []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.state = b
}

func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit {
		return d.meta[:limit] // validated on input; never hand memberlist a panic
	}
	return d.meta
}

func (d *delegate) NotifyMsg(b []byte) {
	emit(obj{"ev": "user_msg", "data": string(b)})
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

func (d *delegate) LocalState(join bool) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	emit(obj{"ev": "remote_state", "data": string(buf), "join": join})
}

func (d *delegate) NotifyJoin(n *memberlist.Node) {
	d.notify("join", n)
}

func (d *delegate) NotifyUpdate(n *memberlist.Node) {
	d.notify("update", n)
}

func (d *delegate) NotifyLeave(n *memberlist.Node) {
	d.notify("leave", n)
}

func (d *delegate) notify(ev string, n *memberlist.Node) {
	s := stateOf(n)
	m := member{
		Node:        *n,
		Name:        n.Name,
		Addr:        n.Address(),
		State:       stateName(s.State),
		Meta:        string(n.Meta),
		Incarnation: s.Incarnation,
	}
	m.Node.Meta = append([]byte(nil), n.Meta...)
	m.Node.State = s.State
	remember(m)
	line := obj{"ev": ev, "node": m.Name, "addr": m.Addr}
	if ev == "leave" {
		line["state"] = m.State
	} else {
		line["meta"] = m.Meta
	}
	emit(line)
}

func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	emit(obj{"ev": "conflict", "node": existing.Name, "existing": existing.Address(), "other": other.Address()})
}

// userBroadcast is one user payload in the gossip queue.
type userBroadcast []byte

func (b userBroadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b userBroadcast) Message() []byte                       { return b }
func (b userBroadcast) Finished()                             {}
