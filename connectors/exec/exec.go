// Package exec is the exec connector, Net::Proxy's wishlist item and the
// equivalent of socat's EXEC and stunnel's exec: on the out side, each
// client is relayed to a new process's standard input and output.
//
//	p := nproxy.New(&tcp.In{Port: 2222}, &exec.Out{Command: "exec /usr/sbin/sshd -i"})
//
// The child's standard input and output are one end of a unix stream
// socketpair rather than two pipes: one fd for the loop to watch instead of
// two, a half-close that is a shutdown(SHUT_WR) (the child reads EOF while
// its output still flows back), and splice(2) to and from the client as for
// any socket. Its standard error is a pipe whose lines are logged at notice
// level with the connection's name, cut at 4 KiB and rate-limited.
//
// The child is watched through a pidfd in the loop's epoll set: it becomes
// readable when the child exits, and the child is reaped then, without a
// SIGCHLD handler that would have to find which child of the process
// exited (and could race with other code that waits for its own children).
// When the client goes away first, the child's process group gets SIGTERM,
// then SIGKILL after KillTimeout.
//
// Its type name is "exec": --out type=exec,command='exec cat' on the command
// line; in YAML, argv may be a list and env a map.
package exec

import (
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
)

func init() {
	connectors.Register("exec", func(side connectors.Side) any {
		if side == connectors.SideIn {
			return nil
		}
		return &Out{}
	})
}

// DefaultKillTimeout is how long a child has between SIGTERM and SIGKILL.
const DefaultKillTimeout = 5 * time.Second

// Out runs a command for each client and relays the client to it.
type Out struct {
	// Command is run with /bin/sh -c. Exactly one of Command and Argv is set.
	Command string `param:"command"`
	// Argv is the program (looked up in PATH) and its arguments, run
	// without a shell.
	Argv []string `param:"argv"`
	// Env adds to (or replaces in) nproxy's environment for the child.
	Env map[string]any `param:"env"`
	// Dir is the child's working directory; empty means nproxy's.
	Dir string `param:"dir"`
	// KillTimeout is how long a child may outlive its client after SIGTERM
	// before SIGKILL; 0 means DefaultKillTimeout.
	KillTimeout time.Duration `param:"kill_timeout"`
	// Hook, if set, sees the data read from the child.
	Hook loop.Hook

	envOnce sync.Once
	env     []string
}

// Validate implements connectors.Validator.
func (c *Out) Validate() error {
	if (c.Command == "") == (len(c.Argv) == 0) {
		return errors.New("exactly one of command and argv is required")
	}
	return nil
}

// Open implements connectors.Out: the child is started (off the loop), and
// the client relayed to it. A command that cannot start fails this client
// only.
func (c *Out) Open(l *loop.Loop, client *loop.Socket, h connectors.Handler) {
	if err := c.Validate(); err != nil {
		h.Failed(l, client, err)
		return
	}
	spawn(l, c, client.Nick(), func(server *loop.Socket, err error) {
		if err != nil {
			h.Failed(l, client, fmt.Errorf("can't run %s: %w", c.name(), err))
			return
		}
		server.Connector, server.Hook = c, c.Hook
		h.Connected(l, client, server)
	})
}

// program is the file to execute and its argv.
func (c *Out) program() (string, []string, error) {
	if c.Command != "" {
		return "/bin/sh", []string{"/bin/sh", "-c", c.Command}, nil
	}
	// A lookup per connection: a program installed after start is found.
	path, err := osexec.LookPath(c.Argv[0])
	return path, c.Argv, err
}

// name is the command for messages.
func (c *Out) name() string {
	if c.Command != "" {
		return fmt.Sprintf("%q", c.Command)
	}
	return fmt.Sprintf("%q", c.Argv)
}

func (c *Out) killTimeout() time.Duration {
	if c.KillTimeout <= 0 {
		return DefaultKillTimeout
	}
	return c.KillTimeout
}

// environ is nproxy's environment at the first connection with Env
// applied, built once.
func (c *Out) environ() []string {
	c.envOnce.Do(func() {
		merged := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			merged[k] = v
		}
		for k, v := range c.Env {
			merged[k] = fmt.Sprint(v)
		}
		for k, v := range merged {
			c.env = append(c.env, k+"="+v)
		}
		sort.Strings(c.env)
	})
	return c.env
}
