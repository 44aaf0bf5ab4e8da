// Command peer is a hashicorp/memberlist node driven over stdio by the
// Gossamer interop tests; tests/interop/README.md specifies the protocol.
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
	"gossamer.dev/interop/wirecount"
)

// command is one stdin line; each command reads the fields it needs.
type command struct {
	Cmd       string   `json:"cmd"`
	Seeds     []string `json:"seeds"`
	To        string   `json:"to"`
	Data      string   `json:"data"`
	Reliable  bool     `json:"reliable"`
	TimeoutMs int64    `json:"timeout_ms"`
	Key       string   `json:"key"`
	Incoming  *bool    `json:"incoming"`
	Outgoing  *bool    `json:"outgoing"`
}

// peer is the running node.
type peer struct {
	ml       *memberlist.Memberlist
	del      *delegate
	stats    *wirecount.Stats
	exitOnce sync.Once
	// mu serialises commands with the exit path, so memberlist never sees
	// Leave after Shutdown (which panics).
	mu sync.Mutex
}

func main() {
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "peer: %v\n", err)
		os.Exit(2)
	}
	if err := checkLayout(); err != nil {
		fmt.Fprintf(os.Stderr, "peer: unsupported memberlist version: %v\n", err)
		os.Exit(2)
	}
	p, err := start(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "peer: %v\n", err)
		os.Exit(1)
	}
	local := p.ml.LocalNode()
	emit(obj{"ev": "ready", "name": local.Name, "addr": local.Address()})

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		p.exit(true)
	}()

	if len(opts.seeds) > 0 {
		p.join(opts.seeds)
	}
	p.serve()
}

func start(o *options) (*peer, error) {
	conf := o.config()
	logger := log.New(countDecryptFailures(os.Stderr), conf.Name+" ", log.LstdFlags|log.Lmicroseconds)
	conf.Logger = logger

	stats := &wirecount.Stats{}
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{conf.BindAddr},
		BindPort:  conf.BindPort,
		Logger:    logger,
	})
	if err != nil {
		return nil, fmt.Errorf("bind %s:%d: %w", conf.BindAddr, conf.BindPort, err)
	}
	conf.Transport = wirecount.New(nt, stats)

	var live atomic.Pointer[memberlist.Memberlist]
	del := &delegate{
		meta: []byte(o.meta),
		queue: &memberlist.TransmitLimitedQueue{
			RetransmitMult: conf.RetransmitMult,
			NumNodes: func() int {
				if ml := live.Load(); ml != nil {
					return ml.NumMembers()
				}
				return 1
			},
		},
	}
	conf.Delegate = del
	conf.Events = del
	conf.Conflict = del

	ml, err := memberlist.Create(conf)
	if err != nil {
		_ = conf.Transport.Shutdown()
		return nil, fmt.Errorf("memberlist.Create: %w", err)
	}
	live.Store(ml)
	return &peer{ml: ml, del: del, stats: stats}, nil
}

// serve runs the stdin commands one at a time until EOF or shutdown.
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
		p.run(&c)
		p.mu.Unlock()
	}
	if err := in.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "peer: reading stdin: %v\n", err)
	}
	p.exit(false)
}

func (p *peer) run(c *command) {
	switch c.Cmd {
	case "members":
		emit(obj{"ev": "members", "members": members(p.ml)})
	case "join":
		p.join(c.Seeds)
	case "send":
		node, err := findMember(p.ml, c.To)
		if err == nil {
			if c.Reliable {
				err = p.ml.SendReliable(node, []byte(c.Data))
			} else {
				err = p.ml.SendBestEffort(node, []byte(c.Data))
			}
		}
		p.answer(c.Cmd, err)
	case "broadcast":
		p.del.queue.QueueBroadcast(userBroadcast(c.Data))
		p.answer(c.Cmd, nil)
	case "set_state":
		p.del.setState([]byte(c.Data))
		p.answer(c.Cmd, nil)
	case "set_meta":
		if len(c.Data) > memberlist.MetaMaxSize {
			p.answer(c.Cmd, fmt.Errorf("meta is %d bytes, at most %d allowed", len(c.Data), memberlist.MetaMaxSize))
			return
		}
		p.del.setMeta([]byte(c.Data))
		p.answer(c.Cmd, p.ml.UpdateNode(timeoutOr(c.TimeoutMs, 5*time.Second)))
	case "stats":
		emit(withKeyStats(obj(p.stats.Event())))
	case "leave":
		if err := p.ml.Leave(timeoutOr(c.TimeoutMs, time.Second)); err != nil {
			p.answer(c.Cmd, err)
			return
		}
		emit(obj{"ev": "left"})
	default:
		if p.runKeyCommand(c) {
			return
		}
		emitError(c.Cmd, fmt.Errorf("unknown command %q", c.Cmd))
	}
}

func (p *peer) join(seeds []string) {
	n, err := p.ml.Join(seeds)
	if err != nil {
		emit(obj{"ev": "join_failed", "error": fmt.Sprintf("join %v: %v", seeds, err)})
		return
	}
	emit(obj{"ev": "joined", "contacted": n})
}

func (p *peer) answer(cmd string, err error) {
	if err != nil {
		emitError(cmd, err)
		return
	}
	emit(obj{"ev": "ok", "cmd": cmd})
}

// exit shuts memberlist down, after a graceful leave if asked, and exits 0.
// The first caller wins; later callers block until the process is gone.
func (p *peer) exit(leave bool) {
	p.exitOnce.Do(func() {
		p.mu.Lock() // wait for a running command; never released
		if leave {
			if err := p.ml.Leave(5 * time.Second); err != nil {
				fmt.Fprintf(os.Stderr, "peer: leave: %v\n", err)
			}
		}
		if err := p.ml.Shutdown(); err != nil {
			fmt.Fprintf(os.Stderr, "peer: shutdown: %v\n", err)
		}
		os.Exit(0)
	})
	select {}
}

func timeoutOr(ms int64, def time.Duration) time.Duration {
	if ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return def
}

func randomName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
