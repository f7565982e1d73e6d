package udp_test

import (
	"fmt"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/udp"
)

// DNS in front of a resolver: nproxy answers on port 53 of every address,
// IPv4 and IPv6, and relays each client's queries to the resolver from a
// source port of that client's own. A client silent for 10 s is forgotten;
// at most 50,000 clients are remembered at once. The counters may be read
// while Mainloop runs, from any goroutine (a metrics scrape).
func ExampleIn() {
	in := &udp.In{Host: "*", Port: 53, Timeout: 10 * time.Second, MaxFlows: 50000, MaxDatagram: 4096}
	nproxy.New(in, &udp.Out{Host: "192.0.2.53", Port: 53}).Register()
	go func() {
		for range time.Tick(time.Minute) {
			c := in.Counts()
			fmt.Printf("%d clients, %d queries, %d answers, %d dropped\n",
				c.FlowsOpened-c.FlowsClosed, c.DatagramsIn, c.DatagramsOut, c.Dropped)
		}
	}()
	nproxy.Mainloop(0)
}
