// Command pause is the sandbox ("pause") image of the test node: it holds a
// Pod's namespaces open, reaps every child re-parented to it (it is PID 1
// of the sandbox) and exits 0 on SIGTERM or SIGINT. Built static
// (CGO_ENABLED=0) so that its image holds nothing but this file.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every exited child; one SIGCHLD may stand for several.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
