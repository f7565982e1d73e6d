package dnstunnel_test

import (
	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/dnstunnel"
	"github.com/nproxy/nproxy/connectors/tcp"
)

// Crossing a fence that lets only DNS out, with t.example delegated to the
// outside host: inside, local port 2222 goes out in DNS queries through the
// system's resolver; outside, the authoritative server for t.example relays
// the stream to ssh.
func Example() {
	inside := nproxy.New(&tcp.In{Port: 2222}, &dnstunnel.Out{Domain: "t.example", Key: "s3cret"})
	outside := nproxy.New(&dnstunnel.In{Host: "*", Port: 53, Domain: "t.example", Key: "s3cret"},
		&tcp.Out{Host: "localhost", Port: 22})
	_, _ = inside, outside // each side calls Register, then nproxy.Mainloop(0)
}
