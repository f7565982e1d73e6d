package nproxy

import "golang.org/x/sys/unix"

// A relayed connection holds its client and server sockets, and a pipe (two
// fds) per direction only while spliced data is in flight. Sizing maxconn
// for a pipe per direction (4 fds a connection) would leave half the fds
// unused by idle connections; like haproxy, whose maxpipes defaults to
// maxconn/4, nproxy bounds the pipes instead (loop.Config.MaxPipes), and a
// chunk finding none free is copied through the buffers. A connection then
// costs 2 + 2/connsPerPipe fds: 2.5, so 20,000 fds serve 7,974 connections,
// not 4,984. The process meets its connection bound (accept pauses, the
// backlog holds clients) before EMFILE, which would fail the connect of a
// client already accepted; EMFILE stays a backstop (loop's accept back-off,
// and a pipe that cannot be made falls back to copying).
const connsPerPipe = 4

// fdReserve is kept for what is not a connection: each loop's epoll,
// eventfd, listeners, the metrics server, the log; a quarter of the fds at
// most, for tiny limits.
const fdReserve = 64

// fdLimit is the process's fd limit (RLIMIT_NOFILE, which Go raises to its
// hard limit at start), or 0 when that is past any use.
func fdLimit() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 0
	}
	return int(rl.Cur)
}

// defaultMaxConn is the global maxconn when none is set (see connsFor).
func defaultMaxConn() int { return connsFor(fdLimit()) }

// connsFor is the connections an fd limit holds at 2 + 2/connsPerPipe fds
// each, once the reserve is set aside; 0 (no bound) for no limit.
func connsFor(limit int) int {
	if limit == 0 {
		return 0
	}
	budget := limit - min(fdReserve, limit/4)
	return max(budget*connsPerPipe/(2*connsPerPipe+2), 1)
}

// maxPipesPerLoop is each loop's loop.Config.MaxPipes (see pipesFor).
func maxPipesPerLoop(loops int) int { return pipesFor(fdLimit(), loops) }

// pipesFor is a pipe for every connsPerPipe connections the fd limit holds,
// shared evenly by the loops, whatever maxconn is set (the pipes must fit
// the fds, not the clients): 0 (no bound) for no limit, -1 (no pipes: copy)
// when the share rounds down to none.
func pipesFor(limit, loops int) int {
	conns := connsFor(limit)
	if conns == 0 {
		return 0
	}
	if n := conns / connsPerPipe / loops; n > 0 {
		return n
	}
	return -1
}
