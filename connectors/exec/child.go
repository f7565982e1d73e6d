package exec

import (
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

// start runs path with argv, its standard input and output one end of a
// socketpair and its standard error a pipe; it returns the other end of the
// socketpair as a socket of l. fork (vfork, in Go) and exec block the loop
// for the time of a vfork, as they would any fork-per-connection server.
func start(l *loop.Loop, path string, argv, env []string, dir string, killTimeout time.Duration, nick string) (*loop.Socket, error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var errPipe [2]int
	if err := unix.Pipe2(errPipe[:], unix.O_CLOEXEC); err != nil {
		closeAll(pair[0], pair[1])
		return nil, err
	}
	pidfd := -1
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []uintptr{uintptr(pair[1]), uintptr(pair[1]), uintptr(errPipe[1])},
		// A group of its own, so that a shell's children are killed
		// with it; the pidfd, so that it is reaped from the loop.
		Sys: &syscall.SysProcAttr{Setpgid: true, PidFD: &pidfd},
	})
	closeAll(pair[1], errPipe[1]) // the child's ends
	if err != nil {
		closeAll(pair[0], errPipe[0])
		return nil, err
	}
	ch := &child{l: l, pid: pid, nick: nick, killTimeout: killTimeout}
	if err := ch.adopt(pair[0], errPipe[0], pidfd); err != nil {
		unix.Kill(-pid, unix.SIGKILL)
		if pidfd < 0 {
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, 0, nil) // killed: this wait is short
		}
		return nil, err
	}
	return ch.server, nil
}

// adopt makes loop sockets of the connection's end, the stderr pipe and the
// pidfd. On error every fd is closed.
func (ch *child) adopt(conn, stderr, pidfd int) error {
	l := ch.l
	if pidfd < 0 {
		closeAll(conn, stderr)
		return fmt.Errorf("no pidfd for the child (Linux 5.3 or later is needed)")
	}
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
