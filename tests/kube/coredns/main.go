// Command coredns is CoreDNS built from the published Go module with only the
// plugins a test cluster's Service DNS needs. CoreDNS's own main package
// imports core/plugin, which links every plugin and the cloud SDKs some of
// them need (several GB of modules); this one links these:
//
//	kubernetes, forward, cache, errors, health, ready, log, loop, reload,
//	loadbalance, bind, and hosts and whoami for checks without a cluster.
//
// They pull in metadata, prometheus, dnstap, transfer and debug too (as
// -plugins shows), so a Corefile may use those.
//
// Each plugin registers itself when imported; dnsserver.Directives (in the
// coredns module) fixes their order, so a Corefile behaves as upstream's.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/whoami"
)

func main() {
	coremain.Run()
}
