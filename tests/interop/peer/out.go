package main

import (
	"bytes"
	"encoding/json"
	"os"
	"sync"
)

// obj is one JSON line on stdout.
type obj = map[string]any

// out serialises event lines: one Write per line under a mutex, so lines
// from the command loop, memberlist's delegate goroutines and the signal
// handler never interleave.
var out struct {
	mu sync.Mutex
}

func emit(ev obj) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		// Only unencodable values fail here; report instead of dropping.
		buf.Reset()
		_ = enc.Encode(obj{"ev": "error", "cmd": "", "error": "encode event: " + err.Error()})
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	// A write error means the harness is gone; stdin EOF will end us.
	_, _ = os.Stdout.Write(buf.Bytes())
}

func emitError(cmd string, err error) {
	emit(obj{"ev": "error", "cmd": cmd, "error": err.Error()})
}
