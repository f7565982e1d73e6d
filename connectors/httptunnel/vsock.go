package httptunnel

import (
	"github.com/nproxy/nproxy/loop"
	"golang.org/x/sys/unix"
)

// vsock is a loop socket made of an eventfd, for a byte stream that has no
// fd of its own (a tunnel, a mux stream): its transport does the reading
// and writing, and the eventfd is made readable exactly while the
// transport has something for the reader, so that the relay's read
// interest and backpressure work on it as on any socket. It is never
// watched for writing (its transport's FdBlocked says no): the transport
// calls Notify when it has room again.
type vsock struct {
	s        *loop.Socket
	signaled bool
}

// newVsock makes the socket, with t as its transport.
func newVsock(l *loop.Loop, t loop.Transport, nick string) (vsock, error) {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return vsock{}, err
	}
	s, err := l.Adopt(fd, nil)
	if err != nil {
		unix.Close(fd)
		return vsock{}, err
	}
	s.SetTransport(t)
	s.SetNick(nick)
	return vsock{s: s}, nil
}

// signal makes the eventfd readable or not.
func (v *vsock) signal(readable bool) {
	if readable == v.signaled || v.s.Closed() {
		return
	}
	var buf = [8]byte{1}
	if readable {
		unix.Write(v.s.Fd(), buf[:])
	} else {
		unix.Read(v.s.Fd(), buf[:])
	}
	v.signaled = readable
}
