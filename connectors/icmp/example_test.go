package icmp_test

import (
	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/icmp"
	"github.com/nproxy/nproxy/connectors/tcp"
)

// Crossing a fence that lets pings through: inside, local port 2222 goes
// through the icmp proxy at gw.example.com to 10.0.0.5:22; outside, on
// gw.example.com, the proxy connects what its clients ask for, within allow.
func Example() {
	inside := nproxy.New(&tcp.In{Port: 2222},
		&icmp.Out{ProxyHost: "gw.example.com", Host: "10.0.0.5", Port: 22, Password: "s3cret"})
	outside := nproxy.New(&icmp.In{Password: "s3cret", Allow: []string{"10.0.0.5:22"}}, &tcp.Out{})
	_, _ = inside, outside // each side calls Register, then nproxy.Mainloop(0)
}
