package loop

import "golang.org/x/sys/unix"

// epoller is the Linux poller. It is level-triggered: the watch lists say
// what the loop wants to hear about, and a socket whose reader is paused for
// backpressure simply leaves the readers list, which is one epoll_ctl.
type epoller struct {
	epfd int
	raw  []unix.EpollEvent
}

func newEpoller() (*epoller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &epoller{epfd: fd, raw: make([]unix.EpollEvent, 256)}, nil
}

func epollMask(interest uint8) uint32 {
	var m uint32
	if interest&watchRead != 0 {
		// RDHUP reports a peer's FIN even when no read is pending, so a
		// half-closed client is noticed at once.
		m |= unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if interest&watchWrite != 0 {
		m |= unix.EPOLLOUT
	}
	return m
}

func (p *epoller) add(fd int, interest uint8) error {
	ev := unix.EpollEvent{Events: epollMask(interest), Fd: int32(fd)}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
}

func (p *epoller) modify(fd int, interest uint8) error {
	ev := unix.EpollEvent{Events: epollMask(interest), Fd: int32(fd)}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
}

func (p *epoller) remove(fd int) error {
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

func (p *epoller) wait(evs []event, timeoutMs int) ([]event, error) {
	n, err := unix.EpollWait(p.epfd, p.raw, timeoutMs)
	if err != nil {
		if err == unix.EINTR {
			return evs, nil
		}
		return evs, err
	}
	for _, r := range p.raw[:n] {
		evs = append(evs, event{
			fd:       int(r.Fd),
			readable: r.Events&(unix.EPOLLIN|unix.EPOLLRDHUP) != 0,
			writable: r.Events&unix.EPOLLOUT != 0,
			hangup:   r.Events&(unix.EPOLLERR|unix.EPOLLHUP) != 0,
		})
	}
	if n == len(p.raw) && n < 4096 {
		// A full batch means more may be waiting: grow for the next call.
		p.raw = make([]unix.EpollEvent, 2*n)
	}
	return evs, nil
}

func (p *epoller) close() error { return unix.Close(p.epfd) }
