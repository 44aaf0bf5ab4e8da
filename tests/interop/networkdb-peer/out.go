package main

import (
	"bytes"
	"encoding/json"
	"os"
	"sync"
)

// obj is one JSON line on stdout.
type obj = map[string]any

// outMu serialises event lines: one Write per line, so lines from the
// command loop, the watch goroutine and the signal handler never interleave.
var outMu sync.Mutex

func emit(ev obj) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		buf.Reset()
		_ = enc.Encode(obj{"ev": "error", "cmd": "", "error": "encode event: " + err.Error()})
	}
	outMu.Lock()
	defer outMu.Unlock()
	// A write error means the harness is gone; stdin EOF will end us.
	_, _ = os.Stdout.Write(buf.Bytes())
}

func emitError(cmd string, err error) {
	emit(obj{"ev": "error", "cmd": cmd, "error": err.Error()})
}

// text is a value as JSON: its text, or null for nil (absent).
func text(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}
