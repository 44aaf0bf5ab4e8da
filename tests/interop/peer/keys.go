package main

// Keyring control for the interop peer: the --verify-incoming and
// --verify-outgoing flags, the add_key/use_key/remove_key/keys/set_verify
// commands (tests/interop/README.md), and a count of decrypt failures.
//
// memberlist does not count decrypt failures, so the peer counts the log
// lines in which memberlist reports one.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
)

var keyState struct {
	verifyIncoming, verifyOutgoing optBool
	// conf is the live configuration: memberlist keeps this pointer and
	// reads the GossipVerify* fields on every message, so set_verify
	// takes effect at once.
	conf            *memberlist.Config
	decryptFailures atomic.Uint64
}

// registerKeyFlags adds the verification flags to the peer's flag set.
func registerKeyFlags(fs *flag.FlagSet) {
	fs.Var(&keyState.verifyIncoming, "verify-incoming", "true|false: refuse plain gossip when keys are installed (default true)")
	fs.Var(&keyState.verifyOutgoing, "verify-outgoing", "true|false: encrypt outgoing gossip when keys are installed (default true)")
}

// applyKeyConfig always gives memberlist a keyring (empty without --key),
// so keys can be added at run time, and applies the verification flags.
func applyKeyConfig(c *memberlist.Config) {
	if c.Keyring == nil {
		c.Keyring, _ = memberlist.NewKeyring(nil, nil)
	}
	if keyState.verifyIncoming.set {
		c.GossipVerifyIncoming = keyState.verifyIncoming.value
	}
	if keyState.verifyOutgoing.set {
		c.GossipVerifyOutgoing = keyState.verifyOutgoing.value
	}
	keyState.conf = c
}

// fingerprint names a key without revealing it: sha256: and the first 8
// hex digits of its SHA-256, as the sidecar does.
func fingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return "sha256:" + hex.EncodeToString(sum[:4])
}

// parseKey never quotes the text in its error.
func parseKey(text string) ([]byte, error) {
	b, err := hex.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("key is not hex (%d characters)", len(text))
	}
	if err := memberlist.ValidateKey(b); err != nil {
		return nil, err
	}
	return b, nil
}

// runKeyCommand handles the keyring commands; false if c is not one.
func (p *peer) runKeyCommand(c *command) bool {
	ring := keyState.conf.Keyring
	switch c.Cmd {
	case "add_key", "use_key", "remove_key":
		key, err := parseKey(c.Key)
		if err == nil {
			switch c.Cmd {
			case "add_key":
				err = ring.AddKey(key)
			case "use_key":
				err = ring.UseKey(key)
			case "remove_key":
				if len(ring.GetKeys()) == 0 {
					err = fmt.Errorf("the keyring is empty")
				} else {
					err = ring.RemoveKey(key)
				}
			}
		}
		p.answer(c.Cmd, err)
	case "keys":
		keys := ring.GetKeys()
		fps := make([]string, 0, len(keys))
		for _, k := range keys {
			fps = append(fps, fingerprint(k))
		}
		var primary any
		if len(fps) > 0 {
			primary = fps[0]
		}
		emit(obj{"ev": "keys", "primary": primary, "keys": fps})
	case "set_verify":
		if c.Incoming == nil || c.Outgoing == nil {
			p.answer(c.Cmd, fmt.Errorf("set_verify needs both incoming and outgoing"))
			return true
		}
		keyState.conf.GossipVerifyIncoming = *c.Incoming
		keyState.conf.GossipVerifyOutgoing = *c.Outgoing
		p.answer(c.Cmd, nil)
	default:
		return false
	}
	return true
}

// withKeyStats adds decrypt_failures to a stats event.
func withKeyStats(ev obj) obj {
	ev["decrypt_failures"] = keyState.decryptFailures.Load()
	return ev
}

// decryptFailureMarks are the phrases memberlist logs a decrypt failure
// with (packets, accepted streams, and stream replies).
var decryptFailureMarks = [][]byte{
	[]byte("no installed keys could decrypt"),
	[]byte("Decrypt packet failed"),
	[]byte("remote state is not encrypted"),
	[]byte("encryption is not configured"),
}

// decryptCounter passes log output through and counts the lines that
// report a decrypt failure.
type decryptCounter struct {
	mu  sync.Mutex
	out io.Writer
}

func countDecryptFailures(out io.Writer) io.Writer { return &decryptCounter{out: out} }

func (d *decryptCounter) Write(b []byte) (int, error) {
	for _, line := range bytes.Split(b, []byte("\n")) {
		for _, m := range decryptFailureMarks {
			if bytes.Contains(line, m) {
				keyState.decryptFailures.Add(1)
				break
			}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.Write(b)
}
