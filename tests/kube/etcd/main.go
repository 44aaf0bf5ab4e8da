// Command etcd is etcd's server, built from the published Go module. etcd's
// own main module replaces its submodules with local folders, so it cannot
// be installed from the module proxy; its entry point can.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
