package main

import (
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// options are the start-up flags of tests/interop/README.md.
type options struct {
	name, bind, advertise, profile, label, meta string
	seeds, keys                                 listFlag
	protocolVersion                             int
	compression                                 optBool
	probeInterval, probeTimeout, gossipInterval int
	pushPullInterval, suspicionMult             int
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("peer", flag.ContinueOnError)
	fs.StringVar(&o.name, "name", "", "node name (default: 12 random hex chars)")
	fs.StringVar(&o.bind, "bind", "", "UDP and TCP bind address IP:PORT (required, port > 0)")
	fs.StringVar(&o.advertise, "advertise", "", "address told to others (default: --bind)")
	fs.StringVar(&o.profile, "profile", "lan", "lan|wan|local memberlist defaults")
	fs.StringVar(&o.label, "label", "", "cluster label")
	fs.Var(&o.seeds, "seed", "IP:PORT to join at start (repeatable)")
	fs.StringVar(&o.meta, "meta", "", "node metadata text")
	fs.IntVar(&o.protocolVersion, "protocol-version", 2, "memberlist protocol version 2..5")
	fs.Var(&o.compression, "compression", "true|false (default: profile)")
	fs.IntVar(&o.probeInterval, "probe-interval-ms", 0, "override the profile")
	fs.IntVar(&o.probeTimeout, "probe-timeout-ms", 0, "override the profile")
	fs.IntVar(&o.gossipInterval, "gossip-interval-ms", 0, "override the profile")
	fs.IntVar(&o.suspicionMult, "suspicion-mult", 0, "override the profile")
	fs.IntVar(&o.pushPullInterval, "push-pull-interval-ms", 0, "override the profile")
	fs.Var(&o.keys, "key", "hex AES key, 16/24/32 bytes (repeatable, first is primary)")
	registerKeyFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.name == "" {
		o.name = randomName()
	}
	if _, _, err := splitAddr("--bind", o.bind); err != nil {
		return nil, err
	}
	if o.advertise == "" {
		o.advertise = o.bind
	}
	if _, _, err := splitAddr("--advertise", o.advertise); err != nil {
		return nil, err
	}
	if len(o.meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("--meta is %d bytes, at most %d allowed", len(o.meta), memberlist.MetaMaxSize)
	}
	for _, k := range o.keys {
		b, err := hex.DecodeString(k)
		if err != nil {
			return nil, fmt.Errorf("--key: not hex: %v", err)
		}
		if err := memberlist.ValidateKey(b); err != nil {
			return nil, fmt.Errorf("--key: %v", err)
		}
	}
	switch o.profile {
	case "lan", "wan", "local":
	default:
		return nil, fmt.Errorf("--profile %q: want lan, wan or local", o.profile)
	}
	return o, nil
}

// config builds the memberlist configuration; parseFlags validated o.
func (o *options) config() *memberlist.Config {
	var c *memberlist.Config
	switch o.profile {
	case "wan":
		c = memberlist.DefaultWANConfig()
	case "local":
		c = memberlist.DefaultLocalConfig()
	default:
		c = memberlist.DefaultLANConfig()
	}
	c.Name = o.name
	c.BindAddr, c.BindPort, _ = splitAddr("--bind", o.bind)
	c.AdvertiseAddr, c.AdvertisePort, _ = splitAddr("--advertise", o.advertise)
	c.Label = o.label
	c.ProtocolVersion = uint8(o.protocolVersion)
	if o.compression.set {
		c.EnableCompression = o.compression.value
	}
	setMs(&c.ProbeInterval, o.probeInterval)
	setMs(&c.ProbeTimeout, o.probeTimeout)
	setMs(&c.GossipInterval, o.gossipInterval)
	setMs(&c.PushPullInterval, o.pushPullInterval)
	if o.suspicionMult > 0 {
		c.SuspicionMult = o.suspicionMult
	}
	if len(o.keys) > 0 {
		keys := make([][]byte, len(o.keys))
		for i, k := range o.keys {
			keys[i], _ = hex.DecodeString(k)
		}
		c.SecretKey = keys[0]
		c.Keyring, _ = memberlist.NewKeyring(keys, keys[0])
	}
	applyKeyConfig(c)
	return c
}

func setMs(d *time.Duration, ms int) {
	if ms > 0 {
		*d = time.Duration(ms) * time.Millisecond
	}
}

func splitAddr(flagName, s string) (string, int, error) {
	host, portText, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("%s %q: want IP:PORT: %v", flagName, s, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port <= 0 || port > 65535 || net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("%s %q: want an IP and a port in 1..65535", flagName, s)
	}
	return host, port, nil
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// optBool is a boolean flag that takes a separate value ("--compression
// false"), which Go's boolean flags do not, and remembers whether it was set.
type optBool struct{ set, value bool }

func (b *optBool) String() string { return strconv.FormatBool(b.value) }
func (b *optBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	b.set, b.value = true, v
	return nil
}
