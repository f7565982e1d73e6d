package metrics_test

import (
	"log"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/metrics"
)

// A relay with its metrics on port 9100: Prometheus scrapes /metrics, a load
// balancer asks /readyz.
func ExampleStart() {
	srv := &nproxy.Server{}
	srv.Register(nproxy.New(&tcp.In{Port: 6789}, &tcp.Out{Host: "remotehost", Port: 9876}))
	ep, err := metrics.Start("127.0.0.1:9100", srv)
	if err != nil {
		log.Fatal(err)
	}
	defer ep.Close()
	if err := srv.Mainloop(0); err != nil {
		log.Fatal(err)
	}
}
