package main

import (
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"
	"unsafe"

	"github.com/hashicorp/memberlist"
)

// memberlist v0.7.0 exposes neither a node's incarnation nor its real state:
// Members() drops dead and left nodes, and the *Node handed to the event
// delegate never has State set (the state lives in the unexported nodeState
// that embeds Node, and only that outer field is updated). The peer must
// report both precisely, so it reads memberlist's node table through a
// mirror of nodeState whose layout is checked field by field at start-up.
// The module is pinned, so the check only fails if someone bumps it.
type nodeStateMirror struct {
	memberlist.Node
	Incarnation uint32
	State       memberlist.NodeStateType
	StateChange time.Time
}

// Byte offsets inside memberlist.Memberlist, found by checkLayout.
var layout struct {
	nodeLock, nodes uintptr
}

func checkLayout() error {
	mt := reflect.TypeOf(memberlist.Memberlist{})
	lockF, ok1 := mt.FieldByName("nodeLock")
	nodesF, ok2 := mt.FieldByName("nodes")
	if !ok1 || !ok2 || lockF.Type != reflect.TypeOf(sync.RWMutex{}) ||
		nodesF.Type.Kind() != reflect.Slice || nodesF.Type.Elem().Kind() != reflect.Pointer {
		return fmt.Errorf("memberlist.Memberlist has no nodeLock sync.RWMutex / nodes []*nodeState")
	}
	got := nodesF.Type.Elem().Elem()
	want := reflect.TypeOf(nodeStateMirror{})
	if got.Size() != want.Size() || got.NumField() != want.NumField() {
		return fmt.Errorf("memberlist %s has a different layout than nodeStateMirror", got)
	}
	for i := range want.NumField() {
		g, w := got.Field(i), want.Field(i)
		if g.Name != w.Name || g.Type != w.Type || g.Offset != w.Offset {
			return fmt.Errorf("memberlist %s field %d is %s %s at %d, mirror has %s %s at %d",
				got, i, g.Name, g.Type, g.Offset, w.Name, w.Type, w.Offset)
		}
	}
	layout.nodeLock, layout.nodes = lockF.Offset, nodesF.Offset
	return nil
}

// stateOf returns the real state of a node handed to an event delegate.
// memberlist calls the delegates with its node lock held and n pointing at
// the Node embedded first in a nodeState, so the read is race-free.
func stateOf(n *memberlist.Node) *nodeStateMirror {
	return (*nodeStateMirror)(unsafe.Pointer(n))
}

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return fmt.Sprintf("unknown(%d)", int(s))
}

// member is one node as reported by the members command.
type member struct {
	Node        memberlist.Node `json:"-"`
	Name        string          `json:"node"`
	Addr        string          `json:"addr"`
	State       string          `json:"state"`
	Meta        string          `json:"meta"`
	Incarnation uint32          `json:"incarnation"`
}

// nodeTable copies memberlist's node table under its read lock.
func nodeTable(ml *memberlist.Memberlist) []member {
	base := unsafe.Pointer(ml)
	lock := (*sync.RWMutex)(unsafe.Add(base, layout.nodeLock))
	lock.RLock()
	defer lock.RUnlock()
	nodes := *(*[]*nodeStateMirror)(unsafe.Add(base, layout.nodes))
	table := make([]member, 0, len(nodes))
	for _, n := range nodes {
		node := n.Node
		node.Meta = append([]byte(nil), n.Meta...)
		node.State = n.State
		table = append(table, member{
			Node:        node,
			Name:        n.Name,
			Addr:        n.Address(),
			State:       stateName(n.State),
			Meta:        string(n.Meta),
			Incarnation: n.Incarnation,
		})
	}
	return table
}

// reaped remembers the last event seen for every node, so that a dead or
// left node that memberlist has since reaped from its table (after
// GossipToTheDeadTime) is still listed by the members command.
var reaped struct {
	mu    sync.Mutex
	nodes map[string]member
}

func remember(m member) {
	reaped.mu.Lock()
	defer reaped.mu.Unlock()
	if reaped.nodes == nil {
		reaped.nodes = map[string]member{}
	}
	reaped.nodes[m.Name] = m
}

// members lists every node this peer knows of, sorted by name.
func members(ml *memberlist.Memberlist) []member {
	table := nodeTable(ml)
	seen := make(map[string]bool, len(table))
	for _, m := range table {
		seen[m.Name] = true
	}
	reaped.mu.Lock()
	for name, m := range reaped.nodes {
		if !seen[name] {
			table = append(table, m)
		}
	}
	reaped.mu.Unlock()
	sort.Slice(table, func(i, j int) bool { return table[i].Name < table[j].Name })
	return table
}

func findMember(ml *memberlist.Memberlist, name string) (*memberlist.Node, error) {
	for _, m := range nodeTable(ml) {
		if m.Name == name {
			return &m.Node, nil
		}
	}
	return nil, fmt.Errorf("unknown node %q", name)
}
