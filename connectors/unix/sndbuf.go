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
// epoll_ctl to stop and resume the source. The kernel caps the value at
// net.core.wmem_max, then doubles it for its bookkeeping: 2 MiB where
// wmem_max allows 1 MiB, one pipe-ful per splice; 416 KiB on a stock
// kernel (wmem_max 208 KiB), still half the splices. Unix sockets have no
// autotuning for a fixed size to turn off.
const sendBuffer = 1 << 20

// setSendBuffer raises s's send buffer; a refusal only leaves the default.
func setSendBuffer(s *loop.Socket) {
	sys.SetsockoptInt(s.Fd(), sys.SOL_SOCKET, sys.SO_SNDBUF, sendBuffer)
}
