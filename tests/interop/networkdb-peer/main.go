// Command networkdb-peer runs one real libnetwork NetworkDB node
// (github.com/moby/moby/v2/daemon/libnetwork/networkdb, pinned in go.mod)
// on loopback, driven over stdio by the Gossamer interop tests. The
// protocol is the JSON-lines one of tests/interop/README.md, with the
// NetworkDB commands and events its "NetworkDB peer" section lists.
//
// NetworkDB offers no hook for its transport or its memberlist instance;
// this program reaches two unexported fields by reflection (see
// unexported.go): Config.transport, to count the bytes on the wire as the
// memberlist peer does, and NetworkDB.memberlist, to answer `members`.
// Nothing else of NetworkDB's configuration is changed from DefaultConfig:
// memberlist's LAN profile (gossip 200 ms, push/pull and bulk sync 30 s,
// probe 1 s), protocol version 2, 1400-byte packets, tombstones reaped
// after 30 min, failed nodes after 24 h.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/moby/moby/v2/daemon/libnetwork/networkdb"
	"gossamer.dev/interop/wirecount"
)

// command is one stdin line; each command reads the fields it needs.
type command struct {
	Cmd     string   `json:"cmd"`
	Seeds   []string `json:"seeds"`
	Network string   `json:"network"`
	Table   string   `json:"table"`
	Key     string   `json:"key"`
	Value   string   `json:"value"`
}

type peer struct {
	db    *networkdb.NetworkDB
	ml    *memberlist.Memberlist
	stats *wirecount.Stats
	// mu serialises commands with the exit path.
	mu       sync.Mutex
	closed   bool
	exitOnce sync.Once
}

func main() {
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "networkdb-peer: %v\n", err)
		os.Exit(2)
	}
	p, err := start(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "networkdb-peer: %v\n", err)
		os.Exit(1)
	}
	go p.watch()
	emit(obj{"ev": "ready", "name": opts.name, "addr": p.ml.LocalNode().Address()})

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		p.exit(true)
	}()

	for _, nid := range opts.networks {
		if err := p.db.JoinNetwork(nid); err != nil {
			emitError("join_network", err)
		}
	}
	if len(opts.seeds) > 0 {
		p.join(opts.seeds)
	}
	p.serve()
}

func start(o *options) (*peer, error) {
	conf := networkdb.DefaultConfig()
	conf.NodeID = o.name
	conf.Hostname = o.name
	conf.BindAddr = o.ip
	conf.AdvertiseAddr = o.ip
	conf.BindPort = o.port
	conf.Keys = o.keys

	stats := &wirecount.Stats{}
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{o.ip},
		BindPort:  o.port,
	})
	if err != nil {
		return nil, fmt.Errorf("bind %s:%d: %w", o.ip, o.port, err)
	}
	if err := setUnexported(conf, "transport", memberlist.Transport(wirecount.New(nt, stats))); err != nil {
		_ = nt.Shutdown()
		return nil, err
	}
	db, err := networkdb.New(conf)
	if err != nil {
		return nil, fmt.Errorf("networkdb.New: %w", err)
	}
	ml, err := getUnexported[*memberlist.Memberlist](db, "memberlist")
	if err != nil {
		return nil, err
	}
	return &peer{db: db, ml: ml, stats: stats}, nil
}

// watch prints every change NetworkDB reports to its watchers: remote
// table events (NetworkDB never reports its own writes) and memberlist
// joins and leaves (by IP only, as NetworkDB's NodeTable carries them).
func (p *peer) watch() {
	ch, _ := p.db.Watch("", "")
	for ev := range ch.C {
		e, ok := ev.(networkdb.WatchEvent)
		if !ok {
			continue
		}
		if e.Table == networkdb.NodeTable {
			op, raw := "join", e.Value
			if e.Value == nil {
				op, raw = "leave", e.Prev
			}
			var na networkdb.NodeAddr
			_ = json.Unmarshal(raw, &na)
			emit(obj{"ev": "node_event", "op": op, "ip": na.Addr.String()})
			continue
		}
		op := "update"
		switch {
		case e.IsCreate():
			op = "create"
		case e.IsDelete():
			op = "delete"
		}
		emit(obj{"ev": "table_event", "op": op, "network": e.NetworkID, "table": e.Table,
			"key": e.Key, "value": text(e.Value), "prev": text(e.Prev), "ts_ns": time.Now().UnixNano()})
	}
}

func (p *peer) serve() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for in.Scan() {
		line := in.Bytes()
		if len(line) == 0 {
			continue
		}
		var c command
		if err := json.Unmarshal(line, &c); err != nil {
			emitError("", fmt.Errorf("bad command line %q: %w", line, err))
			continue
		}
		if c.Cmd == "shutdown" {
			break
		}
		p.mu.Lock()
		if p.closed && c.Cmd != "stats" {
			emitError(c.Cmd, fmt.Errorf("NetworkDB is closed (the node left)"))
		} else {
			p.run(&c)
		}
		p.mu.Unlock()
	}
	p.exit(false)
}

func (p *peer) run(c *command) {
	switch c.Cmd {
	case "members":
		emit(obj{"ev": "members", "members": members(p.ml)})
	case "join":
		p.join(c.Seeds)
	case "join_network":
		p.answer(c.Cmd, p.db.JoinNetwork(c.Network))
	case "leave_network":
		p.answer(c.Cmd, p.db.LeaveNetwork(c.Network))
	case "create":
		p.answer(c.Cmd, p.db.CreateEntry(c.Table, c.Network, c.Key, []byte(c.Value)))
	case "update":
		p.answer(c.Cmd, p.db.UpdateEntry(c.Table, c.Network, c.Key, []byte(c.Value)))
	case "delete":
		p.answer(c.Cmd, p.db.DeleteEntry(c.Table, c.Network, c.Key))
	case "get":
		v, err := p.db.GetEntry(c.Table, c.Network, c.Key)
		if err != nil {
			v = nil // NetworkDB's only error here is "not found" (or hidden)
		}
		emit(obj{"ev": "entry", "network": c.Network, "table": c.Table, "key": c.Key, "value": text(v)})
	case "list":
		entries := map[string]string{}
		for k, e := range p.db.GetTableByNetwork(c.Table, c.Network) {
			entries[k] = string(e.Value)
		}
		emit(obj{"ev": "table", "network": c.Network, "table": c.Table, "entries": entries})
	case "peers":
		var names []string
		for _, pi := range p.db.Peers(c.Network) {
			names = append(names, pi.Name)
		}
		sort.Strings(names)
		emit(obj{"ev": "peers", "network": c.Network, "peers": names})
	case "stats":
		emit(obj(p.stats.Event()))
	case "leave":
		// NetworkDB has no leave without close: Close sends the node leave
		// event, leaves memberlist and shuts it down. The process stays up.
		p.db.Close()
		p.closed = true
		emit(obj{"ev": "left"})
	default:
		emitError(c.Cmd, fmt.Errorf("unknown command %q", c.Cmd))
	}
}

func (p *peer) join(seeds []string) {
	if err := p.db.Join(seeds); err != nil {
		emit(obj{"ev": "join_failed", "error": fmt.Sprintf("join %v: %v", seeds, err)})
		return
	}
	emit(obj{"ev": "joined", "contacted": len(seeds)})
}

func (p *peer) answer(cmd string, err error) {
	if err != nil {
		emitError(cmd, err)
		return
	}
	emit(obj{"ev": "ok", "cmd": cmd})
}

// exit closes NetworkDB (a graceful leave) if asked, and exits 0.
func (p *peer) exit(leave bool) {
	p.exitOnce.Do(func() {
		p.mu.Lock() // wait for a running command; never released
		if leave && !p.closed {
			p.db.Close()
		}
		os.Exit(0)
	})
	select {}
}

func members(ml *memberlist.Memberlist) []obj {
	out := []obj{}
	for _, m := range ml.Members() {
		out = append(out, obj{"node": m.Name, "addr": m.Address(), "state": "alive",
			"meta": string(m.Meta)})
	}
	return out
}
