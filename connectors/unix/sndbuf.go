package unix

import (
	"github.com/nproxy/nproxy/loop"
	sys "golang.org/x/sys/unix"
)

// sendBuffer is the SO_SNDBUF asked for each unix stream socket the
// connector connects or accepts.
//
// A unix stream socket has no receive buffer of its own: what it may hold
// in flight is its sender's send buffer, net.core.wmem_default (208 KiB).
// The relay splices through 1 MiB pipes (loop.Config.PipeSize), so with the
// default one pipe-ful crossed a unix socket in four splices, each ending
// in EAGAIN, a pass of epoll_wait for the reader to make room, and two
// epoll_ctl to stop and resume the source. The kernel doubles the value
// for its bookkeeping and caps it at net.core.wmem_max (208 KiB on a stock
// kernel, so there the default stays; raise wmem_max to benefit).
const sendBuffer = 1 << 20

// setSendBuffer raises s's send buffer; a refusal only leaves the default.
func setSendBuffer(s *loop.Socket) {
	sys.SetsockoptInt(s.Fd(), sys.SOL_SOCKET, sys.SO_SNDBUF, sendBuffer)
}
