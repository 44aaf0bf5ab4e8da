package main

import (
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/hashicorp/memberlist"
)

// options are the start-up flags NetworkDB can honour (see the README).
type options struct {
	name, bind      string
	ip              string
	port            int
	seeds, networks listFlag
	hexKeys         listFlag
	keys            [][]byte
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("networkdb-peer", flag.ContinueOnError)
	fs.StringVar(&o.name, "name", "", "node name = NetworkDB NodeID (required)")
	fs.StringVar(&o.bind, "bind", "", "UDP and TCP bind address IP:PORT (required, port > 0)")
	fs.Var(&o.seeds, "seed", "IP:PORT to join at start (repeatable)")
	fs.Var(&o.networks, "network", "network id to join at start (repeatable)")
	fs.Var(&o.hexKeys, "key", "hex AES key, 16/24/32 bytes (repeatable, first is primary)")
	profile := fs.String("profile", "lan", "only lan: NetworkDB always uses memberlist's LAN defaults")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *profile != "lan" {
		return nil, fmt.Errorf("--profile %q: NetworkDB always runs memberlist's LAN profile", *profile)
	}
	if o.name == "" {
		return nil, fmt.Errorf("--name is required (it is the NetworkDB NodeID)")
	}
	host, port, err := net.SplitHostPort(o.bind)
	if err != nil {
		return nil, fmt.Errorf("--bind %q: %v", o.bind, err)
	}
	o.ip = host
	o.port, err = strconv.Atoi(port)
	if err != nil || o.port <= 0 || o.port > 65535 {
		return nil, fmt.Errorf("--bind %q: port must be 1..65535", o.bind)
	}
	for i, k := range o.hexKeys {
		b, err := hex.DecodeString(k)
		if err != nil {
			return nil, fmt.Errorf("--key number %d: not hex", i+1)
		}
		if err := memberlist.ValidateKey(b); err != nil {
			return nil, fmt.Errorf("--key number %d: %v", i+1, err)
		}
		o.keys = append(o.keys, b)
	}
	return o, nil
}
