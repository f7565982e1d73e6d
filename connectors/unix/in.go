package unix

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/proxyproto"
	"github.com/nproxy/nproxy/loop"
	sys "golang.org/x/sys/unix"
)

// In listens on the unix socket at Path and hands each client to the proxy.
// Unix sockets have no SO_REUSEPORT: with several loops, the first one
// accepts every client of the socket.
type In struct {
	// Path is the socket's file, or @name in the abstract namespace.
	Path string `param:"path,required"`
	// Mode is the socket file's permissions in octal ("0660"); empty means
	// what the umask gives. (In YAML, quote it: 0660 unquoted is a number.)
	Mode string `param:"mode"`
	// Owner and Group, names or numbers, own the socket file if set.
	Owner string `param:"owner"`
	Group string `param:"group"`
	// Unlink removes a stale socket file (one no server answers on) before
	// listening. A regular file, or a socket a server still answers on, is
	// never removed: listening fails instead. The command's default is yes.
	Unlink bool `param:"unlink"`
	// Socket is the socket type: "stream" (the default) or "seqpacket".
	Socket string `param:"socket"`
	// Hook, if set, sees the data read from clients.
	Hook loop.Hook
	// Accept reads a PROXY protocol header first, if configured: a balancer
	// on the same host (haproxy's `server ... unix@path send-proxy`) passes
	// on the client's address.
	proxyproto.Accept

	bound atomic.Bool // a loop of the running Mainloop listens
}

// Validate implements connectors.Validator.
func (c *In) Validate() error {
	if err := checkPath(c.Path); err != nil {
		return err
	}
	if _, err := c.mode(); err != nil {
		return err
	}
	if c.abstract() && (c.Mode != "" || c.Owner != "" || c.Group != "") {
		return fmt.Errorf("mode, owner and group need a socket file, and %s is an abstract name", c.Path)
	}
	if _, err := socketType(c.Socket); err != nil {
		return err
	}
	return c.Accept.Validate()
}

func (c *In) abstract() bool { return strings.HasPrefix(c.Path, "@") }

// mode parses Mode: -1 when unset.
func (c *In) mode() (int, error) {
	if c.Mode == "" {
		return -1, nil
	}
	m, err := strconv.ParseUint(strings.TrimPrefix(c.Mode, "0o"), 8, 32)
	if err != nil || m > 0o7777 {
		return 0, fmt.Errorf("mode must be octal permissions such as 0660, not %q", c.Mode)
	}
	return int(m), nil
}

// Listen implements connectors.In.
func (c *In) Listen(l *loop.Loop, h connectors.Handler) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if !c.bound.CompareAndSwap(false, true) {
		return nil // another loop of this Mainloop has the socket
	}
	s, err := c.listen(l, h)
	if err != nil {
		c.bound.Store(false)
		return fmt.Errorf("can't listen on unix socket %s: %w", c.Path, err)
	}
	s.Closer = c.remover(s)
	return nil
}

func (c *In) listen(l *loop.Loop, h connectors.Handler) (*loop.Socket, error) {
	typ, _ := socketType(c.Socket)
	if !c.abstract() {
		if err := c.clearStale(); err != nil {
			return nil, err
		}
	}
	accept, err := c.Accept.Wrap(func(client *loop.Socket) {
		client.Connector, client.Hook = c, c.Hook
		if typ == sys.SOCK_STREAM {
			setSendBuffer(client)
		}
		if !client.RemoteAddr().IsValid() {
			client.SetNick(c.Path) // a unix client has no address of its own
		}
		h.Accepted(l, client)
	})
	if err != nil {
		return nil, err
	}
	s, err := l.ListenUnix(c.Path, typ, accept)
	if err != nil {
		if errors.Is(err, sys.EADDRINUSE) {
			err = fmt.Errorf("%w (another server has it)", err)
		}
		return nil, err
	}
	// The loop listens only once it runs: no client can connect before the
	// file has its mode and owner.
	if err := c.setOwnership(); err != nil {
		l.Close(s)
		return nil, err
	}
	return s, nil
}

// clearStale makes room at Path: nothing there is fine, a stale socket is
// removed if Unlink says so, anything else is an error. A socket is stale
// when connecting to it is refused: no server listens on it.
func (c *In) clearStale() error {
	var st sys.Stat_t
	err := sys.Lstat(c.Path, &st)
	if errors.Is(err, sys.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode&sys.S_IFMT != sys.S_IFSOCK {
		return errors.New("the path exists and is not a socket: not removing it")
	}
	if live(c.Path) {
		return errors.New("a server is listening on it: not removing it")
	}
	if !c.Unlink {
		return errors.New("a stale socket file is in the way (unlink=1 removes it)")
	}
	return sys.Unlink(c.Path)
}

// live reports whether a server accepts connections on the socket at path.
// The connect does not block: a full backlog (EAGAIN) is a live server too.
func live(path string) bool {
	for _, typ := range []int{sys.SOCK_STREAM, sys.SOCK_SEQPACKET} {
		fd, err := sys.Socket(sys.AF_UNIX, typ|sys.SOCK_NONBLOCK|sys.SOCK_CLOEXEC, 0)
		if err != nil {
			return true // cannot tell: keep the file
		}
		err = sys.Connect(fd, &sys.SockaddrUnix{Name: path})
		sys.Close(fd)
		if err != sys.ECONNREFUSED && err != sys.EPROTOTYPE {
			return true
		}
	}
	return false
}

func (c *In) setOwnership() error {
	if m, _ := c.mode(); m >= 0 {
		if err := sys.Chmod(c.Path, uint32(m)); err != nil {
			return fmt.Errorf("mode: %w", err)
		}
	}
	if c.Owner == "" && c.Group == "" {
		return nil
	}
	uid, gid := -1, -1
	var err error
	if c.Owner != "" {
		if uid, err = lookupID(c.Owner, user.Lookup, func(u *user.User) string { return u.Uid }); err != nil {
			return fmt.Errorf("owner: %w", err)
		}
	}
	if c.Group != "" {
		if gid, err = lookupID(c.Group, user.LookupGroup, func(g *user.Group) string { return g.Gid }); err != nil {
			return fmt.Errorf("group: %w", err)
		}
	}
	return sys.Lchown(c.Path, uid, gid)
}

// lookupID takes a number as it is, and a name through the system's
// user or group database.
func lookupID[T any](name string, lookup func(string) (T, error), id func(T) string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	v, err := lookup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(id(v))
}

// remover deletes the socket file when the listener closes (a clean stop),
// if the file is still the one it bound: another server may have replaced
// it meanwhile, and its socket must be left alone.
type remover struct {
	c        *In
	dev, ino uint64
	file     bool
}

func (c *In) remover(s *loop.Socket) *remover {
	r := &remover{c: c}
	var st sys.Stat_t
	if !c.abstract() && sys.Lstat(c.Path, &st) == nil {
		r.dev, r.ino, r.file = st.Dev, st.Ino, true
	}
	return r
}

// SocketClosed implements loop.Closer.
func (r *remover) SocketClosed(*loop.Socket) {
	r.c.bound.Store(false)
	var st sys.Stat_t
	if r.file && sys.Lstat(r.c.Path, &st) == nil && st.Dev == r.dev && st.Ino == r.ino {
		sys.Unlink(r.c.Path)
	}
}
