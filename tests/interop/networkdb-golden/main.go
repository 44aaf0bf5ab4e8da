// Command networkdb-golden prints golden wire vectors for Gossamer's NetworkDB
// codec (sidecar/core/src/tables), marshalled by the real libnetwork networkdb
// package: its gogo/protobuf generated types (networkdb.pb.go) and the same
// envelope libnetwork builds in message.go (GossipMessage{Type, Data}, and
// CompoundMessage for compound messages).
//
//	networkdb-golden encode   prints [{name, type, hex}] for a fixed set of cases
//	networkdb-golden decode   reads [{name, type, hex}] on stdin, unmarshals
//	                          each GossipMessage and its payload with the real
//	                          types, re-marshals it and prints [{name, hex}];
//	                          exits non-zero if any entry fails to decode
//
// The Rust tests build the same named cases independently:
// sidecar/core/tests/tables_golden.rs compares them with the committed
// encode output (vectors.json), tests/e2e/golden_vectors.rs checks that this
// tool still writes that file and that Rust's bytes decode here.
package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	"github.com/gogo/protobuf/proto"
	"github.com/moby/moby/v2/daemon/libnetwork/networkdb"
)

type vector struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Hex  string `json:"hex"`
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// wrap is libnetwork's encodeMessage: marshal msg, then wrap it in a
// GossipMessage of type t.
func wrap(t networkdb.MessageType, msg proto.Message) []byte {
	raw := must(proto.Marshal(msg))
	return must(proto.Marshal(&networkdb.GossipMessage{Type: t, Data: raw}))
}

// compound is libnetwork's makeCompoundMessage.
func compound(parts ...[]byte) []byte {
	c := networkdb.CompoundMessage{}
	c.Messages = make([]*networkdb.CompoundMessage_SimpleMessage, 0, len(parts))
	for _, p := range parts {
		c.Messages = append(c.Messages, &networkdb.CompoundMessage_SimpleMessage{Payload: p})
	}
	return wrap(networkdb.MessageTypeCompound, &c)
}

func cases() []vector {
	var out []vector
	add := func(name, typ string, b []byte) {
		out = append(out, vector{Name: name, Type: typ, Hex: hex.EncodeToString(b)})
	}

	add("node_event_join", "gossip", wrap(networkdb.MessageTypeNodeEvent, &networkdb.NodeEvent{
		Type: networkdb.NodeEventTypeJoin, LTime: 7, NodeName: "7f9ca1b2c3d4",
	}))
	add("node_event_leave", "gossip", wrap(networkdb.MessageTypeNodeEvent, &networkdb.NodeEvent{
		Type: networkdb.NodeEventTypeLeave, LTime: 1 << 40, NodeName: "node-b",
	}))
	add("network_event_join", "gossip", wrap(networkdb.MessageTypeNetworkEvent, &networkdb.NetworkEvent{
		Type: networkdb.NetworkEventTypeJoin, LTime: 3, NodeName: "7f9ca1b2c3d4", NetworkID: "3f2a9c1e7b04",
	}))
	add("network_event_leave", "gossip", wrap(networkdb.MessageTypeNetworkEvent, &networkdb.NetworkEvent{
		Type: networkdb.NetworkEventTypeLeave, LTime: 300, NodeName: "n1", NetworkID: "net",
	}))
	add("table_event_create", "gossip", wrap(networkdb.MessageTypeTableEvent, &networkdb.TableEvent{
		Type: networkdb.TableEventTypeCreate, LTime: 42, NodeName: "7f9ca1b2c3d4",
		NetworkID: "3f2a9c1e7b04", TableName: "backends", Key: "10.1.2.3", Value: []byte("{\"port\":8080}"),
	}))
	add("table_event_update_empty_value", "gossip", wrap(networkdb.MessageTypeTableEvent, &networkdb.TableEvent{
		Type: networkdb.TableEventTypeUpdate, LTime: 43, NodeName: "n1",
		NetworkID: "net", TableName: "t", Key: "k",
	}))
	add("table_event_delete", "gossip", wrap(networkdb.MessageTypeTableEvent, &networkdb.TableEvent{
		Type: networkdb.TableEventTypeDelete, LTime: 18446744073709551615, NodeName: "n1",
		NetworkID: "net", TableName: "health", Key: "ключ/κλειδί", Value: []byte{0, 1, 2, 255},
		ResidualReapTime: 1800,
	}))
	add("table_event_negative_reap", "gossip", wrap(networkdb.MessageTypeTableEvent, &networkdb.TableEvent{
		Type: networkdb.TableEventTypeDelete, LTime: 1, NodeName: "n1",
		NetworkID: "net", TableName: "t", Key: "k", ResidualReapTime: -1,
	}))
	add("push_pull", "gossip", wrap(networkdb.MessageTypePushPull, &networkdb.NetworkPushPull{
		LTime:    99,
		NodeName: "7f9ca1b2c3d4",
		Networks: []*networkdb.NetworkEntry{
			{NetworkID: "net-a", LTime: 5, NodeName: "7f9ca1b2c3d4"},
			{NetworkID: "net-b", LTime: 6, NodeName: "peer", Leaving: true},
		},
	}))
	add("push_pull_empty", "gossip", wrap(networkdb.MessageTypePushPull, &networkdb.NetworkPushPull{
		LTime: 1, NodeName: "n1",
	}))
	ev1 := wrap(networkdb.MessageTypeTableEvent, &networkdb.TableEvent{
		Type: networkdb.TableEventTypeCreate, LTime: 1, NodeName: "n1",
		NetworkID: "net", TableName: "t", Key: "a", Value: []byte("1"),
	})
	ev2 := wrap(networkdb.MessageTypeTableEvent, &networkdb.TableEvent{
		Type: networkdb.TableEventTypeDelete, LTime: 2, NodeName: "n2",
		NetworkID: "net", TableName: "t", Key: "b", Value: []byte("2"), ResidualReapTime: 1799,
	})
	add("compound_two", "gossip", compound(ev1, ev2))
	add("compound_empty", "gossip", compound())
	add("bulk_sync_unsolicited", "gossip", wrap(networkdb.MessageTypeBulkSync, &networkdb.BulkSyncMessage{
		LTime: 12, Unsolicited: true, NodeName: "n1", Networks: []string{"net", "net-b"},
		Payload: compound(ev1, ev2),
	}))
	add("bulk_sync_response_empty", "gossip", wrap(networkdb.MessageTypeBulkSync, &networkdb.BulkSyncMessage{
		LTime: 13, NodeName: "n2", Networks: []string{"net"}, Payload: compound(),
	}))
	// A message type this version does not know: decoders must skip it.
	add("unknown_type", "gossip", must(proto.Marshal(&networkdb.GossipMessage{Type: 9, Data: []byte{1, 2, 3}})))
	return out
}

// decode unmarshals a GossipMessage and its payload with the real types and
// re-marshals both, so a Rust encoding that Go cannot read, or reads
// differently, shows up as an error or a byte difference.
func decode(b []byte) ([]byte, error) {
	var g networkdb.GossipMessage
	if err := proto.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("GossipMessage: %w", err)
	}
	var m proto.Message
	switch g.Type {
	case networkdb.MessageTypeNodeEvent:
		m = &networkdb.NodeEvent{}
	case networkdb.MessageTypeNetworkEvent:
		m = &networkdb.NetworkEvent{}
	case networkdb.MessageTypeTableEvent:
		m = &networkdb.TableEvent{}
	case networkdb.MessageTypePushPull:
		m = &networkdb.NetworkPushPull{}
	case networkdb.MessageTypeBulkSync:
		m = &networkdb.BulkSyncMessage{}
	case networkdb.MessageTypeCompound:
		m = &networkdb.CompoundMessage{}
	default:
		return proto.Marshal(&g)
	}
	if err := proto.Unmarshal(g.Data, m); err != nil {
		return nil, fmt.Errorf("%v payload: %w", g.Type, err)
	}
	switch v := m.(type) {
	case *networkdb.CompoundMessage:
		for i, p := range v.Messages {
			inner, err := decode(p.Payload)
			if err != nil {
				return nil, fmt.Errorf("compound part %d: %w", i, err)
			}
			p.Payload = inner
		}
	case *networkdb.BulkSyncMessage:
		inner, err := decode(v.Payload)
		if err != nil {
			return nil, fmt.Errorf("bulk sync payload: %w", err)
		}
		v.Payload = inner
	}
	g.Data = must(proto.Marshal(m))
	return proto.Marshal(&g)
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: networkdb-golden encode|decode")
		os.Exit(2)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	switch os.Args[1] {
	case "encode":
		if err := enc.Encode(cases()); err != nil {
			panic(err)
		}
	case "decode":
		var in []vector
		if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
			fmt.Fprintln(os.Stderr, "reading vectors:", err)
			os.Exit(1)
		}
		failed := false
		out := make([]vector, 0, len(in))
		for _, v := range in {
			b, err := hex.DecodeString(v.Hex)
			if err == nil {
				b, err = decode(b)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", v.Name, err)
				failed = true
				continue
			}
			out = append(out, vector{Name: v.Name, Type: v.Type, Hex: hex.EncodeToString(b)})
		}
		if err := enc.Encode(out); err != nil {
			panic(err)
		}
		if failed {
			os.Exit(1)
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: networkdb-golden encode|decode")
		os.Exit(2)
	}
}
