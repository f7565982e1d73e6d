package unix_test

import (
	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/connectors/unix"
)

// A web application that listens only on a unix socket, published on a TCP
// port; and the reverse, a local TCP service offered on a socket file that
// only the group www-data may use.
func ExampleIn() {
	nproxy.New(&tcp.In{Host: "*", Port: 8080}, &unix.Out{Path: "/run/app/http.sock"}).Register()
	nproxy.New(&unix.In{Path: "/run/nproxy/db.sock", Mode: "0660", Group: "www-data", Unlink: true},
		&tcp.Out{Host: "127.0.0.1", Port: 5432}).Register()
	nproxy.Mainloop(0)
}
