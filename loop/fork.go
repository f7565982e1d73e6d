package loop

import "sync/atomic"

// A process that starts child processes breaks an assumption of Close: that
// closing an fd takes it out of the epoll set. epoll forgets an fd only when
// its open file is released, and a child holds a copy of every fd of the
// process from its fork until its exec closes them (O_CLOEXEC). An fd a loop
// closes in that window stays in the epoll set, and its events, which carry
// the fd's number, would reach the new socket that reuses the number — a
// hang-up closing a client that never hung up. So once the process forks,
// Close removes the fd from the epoll set itself, at the cost of one
// epoll_ctl per close; a relay that never forks does not pay it.

var forking atomic.Bool

// WillFork tells every loop of the process that child processes may be
// started from now on (the exec connector does, and so must a program that
// embeds nproxy and forks on other goroutines).
func WillFork() { forking.Store(true) }

// forgetIfShared takes s out of the epoll set before it is closed when its
// open file may outlive the close: the process forks, or s is a split
// socket, whose fds (a standard input and output) are usually copies of
// fds that other processes hold too.
func (l *Loop) forgetIfShared(s *Socket) {
	if forking.Load() || s.splitState() != nil {
		l.detach(s)
	}
}
