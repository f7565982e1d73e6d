package exec_test

import (
	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/exec"
	"github.com/nproxy/nproxy/connectors/tcp"
)

// inetd's way: each client of port 2222 gets an sshd of its own in inetd
// mode, its standard error in nproxy's log.
func ExampleOut() {
	nproxy.New(&tcp.In{Port: 2222}, &exec.Out{Argv: []string{"/usr/sbin/sshd", "-i"}}).Register()
	nproxy.Mainloop(0)
}
