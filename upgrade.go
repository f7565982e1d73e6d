package nproxy

import (
	"sync"

	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// ListenerFds returns duplicates of the running Server's listening sockets,
// for a new process that takes them over (loop.Inherit): a binary upgrade
// hands the very sockets over, backlog included, and no client is refused.
// The caller closes them.
func (s *Server) ListenerFds() ([]int, error) {
	r := s.current.Load()
	if r == nil {
		return nil, ErrNotRunning
	}
	var mu sync.Mutex
	var fds []int
	err := r.onEveryLoop(func(_ int, l *loop.Loop) error {
		for _, fd := range l.ListenerFds() {
			d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				return err
			}
			mu.Lock()
			fds = append(fds, d)
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, err
	}
	return fds, nil
}
