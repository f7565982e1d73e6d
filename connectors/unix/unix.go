// Package unix is the unix connector, Net::Proxy's wishlist item: on the in
// side it listens on a unix-domain socket, on the out side it connects to
// one. Stream sockets are relayed with splice(2), as TCP is, whatever the
// other side (tcp, unix).
//
//	p := nproxy.New(&unix.In{Path: "/run/app.sock", Mode: "0660", Unlink: true},
//		&tcp.Out{Host: "127.0.0.1", Port: 8080})
//
// A path that starts with '@' is a name in Linux's abstract namespace, with
// no file. Its type name is "unix": --in type=unix,path=/run/app.sock.
// docs/unix.md says how it performs, and why.
package unix

import (
	"fmt"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
	sys "golang.org/x/sys/unix"
)

func init() {
	connectors.Register("unix", func(side connectors.Side) any {
		if side == connectors.SideIn {
			return &In{Unlink: true}
		}
		return &Out{}
	})
}

// maxPath is the room in sun_path for a path and its terminating NUL (an
// abstract name has a leading NUL instead).
const maxPath = len(sys.RawSockaddrUnix{}.Path) - 1

// Socket types, by the name the type parameter gives them.
var socketTypes = map[string]int{"": sys.SOCK_STREAM, "stream": sys.SOCK_STREAM, "seqpacket": sys.SOCK_SEQPACKET}

// checkPath refuses a path the kernel would refuse, with a clearer message.
func checkPath(path string) error {
	switch {
	case path == "" || path == "@":
		return fmt.Errorf("path must not be empty")
	case len(path) > maxPath:
		return fmt.Errorf("path %q is %d bytes, longer than a unix socket address takes (%d)", path, len(path), maxPath)
	}
	return nil
}

func socketType(name string) (int, error) {
	typ, ok := socketTypes[name]
	if !ok {
		return 0, fmt.Errorf("type of socket must be stream or seqpacket, not %q", name)
	}
	return typ, nil
}

// Out connects to the unix socket at Path for each client.
type Out struct {
	// Path is the socket's file, or @name in the abstract namespace.
	Path string `param:"path,required"`
	// Socket is the socket type: "stream" (the default) or "seqpacket".
	Socket string `param:"socket"`
	// Timeout bounds the connect (retried while the server's backlog is
	// full); 0 means loop.DefaultDialTimeout.
	Timeout time.Duration `param:"timeout"`
	// Hook, if set, sees the data read from the server.
	Hook loop.Hook
}

// Validate implements connectors.Validator.
func (c *Out) Validate() error {
	if err := checkPath(c.Path); err != nil {
		return err
	}
	_, err := socketType(c.Socket)
	return err
}

// Open implements connectors.Out.
func (c *Out) Open(l *loop.Loop, client *loop.Socket, h connectors.Handler) {
	typ, err := socketType(c.Socket)
	if err == nil {
		err = checkPath(c.Path)
	}
	if err != nil {
		h.Failed(l, client, err)
		return
	}
	l.DialUnix(c.Path, typ, c.Timeout, func(server *loop.Socket, err error) {
		if err != nil {
			h.Failed(l, client, err)
			return
		}
		server.Connector, server.Hook = c, c.Hook
		if typ == sys.SOCK_STREAM {
			setSendBuffer(server)
		}
		h.Connected(l, client, server)
	})
}
