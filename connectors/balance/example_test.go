package balance_test

import (
	"fmt"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/balance"
	"github.com/nproxy/nproxy/connectors/tcp"
)

// Two servers, the second with twice the share, picked by fewest open
// connections, with TCP health checks.
func ExampleNew() {
	out, err := balance.New([]balance.Server{
		{Out: &tcp.Out{Host: "10.0.0.1", Port: 80}, Host: "10.0.0.1", Port: 80, Name: "10.0.0.1:80"},
		{Out: &tcp.Out{Host: "10.0.0.2", Port: 80}, Host: "10.0.0.2", Port: 80, Name: "10.0.0.2:80", Weight: 2},
	}, balance.Config{Balance: balance.LeastConn, Check: "tcp"})
	if err != nil {
		fmt.Println(err)
		return
	}
	p := nproxy.New(&tcp.In{Port: 8080}, out)
	fmt.Println(p.Out() == out)
	// Output: true
}
