package exec

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// child is one running command: its pidfd is a socket of the loop, readable
// once the process exits.
type child struct {
	l           *loop.Loop
	pid         int
	nick        string // the client's, for log lines
	pidfd       *loop.Socket
	server      *loop.Socket // the connection's end of the socketpair
	stderr      *stderrLog
	killTimeout time.Duration
	exited      bool
	clientGone  bool
}

// spawn starts c's command for a client off the loop, and calls done on
// the loop with the connection's end of the socketpair as a socket of l, or
// the reason there is none. The child's standard input and output are the
// other end, its standard error a pipe. Off the loop, because a fork blocks
// its thread until the child has run exec: Go forks with vfork, which
// suspends the parent meanwhile, and on a busy machine the child may wait
// for a CPU; the loop would wait with it.
func spawn(l *loop.Loop, c *Out, nick string, done func(*loop.Socket, error)) {
	loop.WillFork()
	go func() {
		p, err := forkExec(c)
		l.Post(func() {
			if err != nil {
				done(nil, err)
				return
			}
			ch := &child{l: l, pid: p.pid, nick: nick, killTimeout: c.killTimeout()}
			if err := ch.adopt(p.conn, p.stderr, p.pidfd); err != nil {
				unix.Kill(-p.pid, unix.SIGKILL)
				done(nil, err)
				return
			}
			done(ch.server, nil)
		})
	}()
}

// process is a child just started: its pid, pidfd, and the parent's ends of
// its standard input/output (a socketpair) and error (a pipe).
type process struct {
	pid, pidfd, conn, stderr int
}

// forkExec starts c's command. It blocks, and runs off the loop.
func forkExec(c *Out) (process, error) {
	path, argv, err := c.program()
	if err != nil {
		return process{}, err
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return process{}, err
	}
	var errPipe [2]int
	if err := unix.Pipe2(errPipe[:], unix.O_CLOEXEC); err != nil {
		closeAll(pair[0], pair[1])
		return process{}, err
	}
	p := process{pidfd: -1, conn: pair[0], stderr: errPipe[0]}
	p.pid, err = syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Dir:   c.Dir,
		Env:   c.environ(),
		Files: []uintptr{uintptr(pair[1]), uintptr(pair[1]), uintptr(errPipe[1])},
		// A group of its own, so that a shell's children are killed
		// with it; the pidfd, so that it is reaped from the loop.
		Sys: &syscall.SysProcAttr{Setpgid: true, PidFD: &p.pidfd},
	})
	closeAll(pair[1], errPipe[1]) // the child's ends
	if err != nil {
		closeAll(pair[0], errPipe[0])
		return process{}, err
	}
	if p.pidfd < 0 {
		unix.Kill(-p.pid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(p.pid, &ws, 0, nil) // killed: this wait is short
		closeAll(pair[0], errPipe[0])
		return process{}, errors.New("no pidfd for the child (Linux 5.3 or later is needed)")
	}
	return p, nil
}

// adopt makes loop sockets of the connection's end, the stderr pipe and the
// pidfd. On error every fd is closed.
func (ch *child) adopt(conn, stderr, pidfd int) error {
	l := ch.l
	for _, fd := range []int{conn, stderr, pidfd} {
		if err := unix.SetNonblock(fd, true); err != nil {
			closeAll(conn, stderr, pidfd)
			return err
		}
	}
	ch.server, _ = l.Adopt(conn, nil)
	ch.server.Raw = true // a unix stream socket splices
	ch.server.Closer = ch
	ch.stderr = &stderrLog{ch: ch}
	ch.stderr.emit = ch.stderr.log
	es, _ := l.Adopt(stderr, ch.stderr)
	ch.stderr.s = es
	l.WatchReader(es)
	ch.pidfd, _ = l.Adopt(pidfd, ch)
	ch.pidfd.Closer = ch
	l.WatchReader(ch.pidfd)
	return nil
}

// Readable is the pidfd's: the child exited, and is reaped. The connection
// ends by itself: the child's end of the socketpair is closed, so the relay
// reads its last output, then EOF, then a hang-up.
func (ch *child) Readable(s *loop.Socket) {
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PIDFD, s.Fd(), &info, unix.WEXITED|unix.WNOHANG, nil); err != nil {
		ch.l.Logger().Error("waitid failed", "pid", ch.pid, "err", err)
	}
	ch.exited = true
	ch.l.Logger().Debug(fmt.Sprintf("child %d of %s exited", ch.pid, ch.nick))
	ch.l.Close(s)
	ch.releaseStderr()
}

// Writable is never watched on a pidfd.
func (ch *child) Writable(*loop.Socket) {}

// SocketClosed is the connection's end closing: the client is gone, or the
// relay is over. A child still running is told to stop, and killed if it
// has not within killTimeout. It is also the pidfd closing: if the child
// has not exited, the loop is shutting down, and the child is stopped and
// reaped off the loop.
func (ch *child) SocketClosed(s *loop.Socket) {
	if s == ch.pidfd {
		if !ch.exited {
			go ch.reapAfterLoop()
		}
		return
	}
	ch.clientGone = true
	if ch.exited {
		ch.releaseStderr()
		return
	}
	unix.Kill(-ch.pid, unix.SIGTERM)
	ch.pidfd.SetTimer(ch.killTimeout, func() {
		ch.l.Logger().Log(nil, loop.LevelNotice, fmt.Sprintf("child %d of %s ignored SIGTERM for %v: killing it", ch.pid, ch.nick, ch.killTimeout))
		unix.Kill(-ch.pid, unix.SIGKILL)
	})
}

// reapAfterLoop stops and reaps a child whose loop is gone, on a
// goroutine of its own: waiting blocks. The pid cannot be reused before the
// wait, so signalling it is safe.
func (ch *child) reapAfterLoop() {
	unix.Kill(-ch.pid, unix.SIGTERM)
	kill := time.AfterFunc(ch.killTimeout, func() { unix.Kill(-ch.pid, unix.SIGKILL) })
	defer kill.Stop()
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(ch.pid, &ws, 0, nil); err != unix.EINTR {
			return
		}
	}
}

// releaseStderr closes the stderr pipe once both the child and the
// connection are over, after reading what is left: a grandchild that kept
// it open must not keep an fd of nproxy's forever.
func (ch *child) releaseStderr() {
	if ch.exited && ch.clientGone && !ch.stderr.s.Closed() {
		ch.stderr.Readable(ch.stderr.s)
		ch.stderr.close()
	}
}

func closeAll(fds ...int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
