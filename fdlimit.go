package nproxy

import "golang.org/x/sys/unix"

// fdsPerConn is the file descriptors one relayed connection may hold: its
// client and server sockets, and a pipe (two fds) per direction while
// spliced data is in flight. Sizing the default maxconn on it means the
// process meets its connection bound (accept pauses, the backlog holds
// clients) before EMFILE, which would fail the connect of a client already
// accepted; EMFILE stays a backstop (loop's accept back-off).
const fdsPerConn = 4

// fdReserve is kept for what is not a connection: each loop's epoll,
// eventfd, listeners and pooled pipes, the metrics server, the log; a
// quarter of the fds at most, for tiny limits.
const fdReserve = 64

// defaultMaxConn is the global maxconn when none is set: what the fd limit
// (RLIMIT_NOFILE, which Go raises to its hard limit at start) allows, or 0
// (no bound) when that is past any use.
func defaultMaxConn() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 0
	}
	n := (int(rl.Cur) - min(fdReserve, int(rl.Cur)/4)) / fdsPerConn
	return max(n, 1)
}
