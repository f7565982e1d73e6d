package loop

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpPairFds returns a bound receiving UDP socket (non-blocking) and a
// sending one connected to it.
func udpPairFds(b *testing.B) (recv, send int) {
	recv, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	unix.SetsockoptInt(recv, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	unix.Bind(recv, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	sa, _ := unix.Getsockname(recv)
	send, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	unix.Connect(send, sa)
	b.Cleanup(func() { unix.Close(recv); unix.Close(send) })
	return recv, send
}

// benchmarkReceive measures draining 64 waiting 64-byte datagrams from a
// listening socket, with recv receiving one datagram per call or a batch
// (the sending is left out of the timing).
func benchmarkReceive(b *testing.B, recv func(fd int) int) {
	r, s := udpPairFds(b)
	p := make([]byte, 64)
	b.ReportAllocs()
	b.SetBytes(64 * 64)
	for b.Loop() {
		b.StopTimer()
		for range 64 {
			unix.Write(s, p)
		}
		b.StartTimer()
		for got := 0; got < 64; {
			n := recv(r)
			if n <= 0 {
				b.Fatalf("received %d of 64", got)
			}
			got += n
		}
	}
}

// BenchmarkRecvfromOneByOne is the alternative to a batch: one raw
// recvfrom(2) per datagram, into a PacketAddr (x/sys/unix's Recvfrom would
// allocate a Sockaddr per call).
func BenchmarkRecvfromOneByOne(b *testing.B) {
	buf := make([]byte, 2048)
	var from PacketAddr
	benchmarkReceive(b, func(fd int) int {
		from.len = unix.SizeofSockaddrInet6
		_, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
			unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&from.raw)), uintptr(unsafe.Pointer(&from.len)))
		if errno != 0 {
			return 0
		}
		return 1
	})
}

func BenchmarkRecvmmsgBatch16(b *testing.B) {
	batch := NewDatagramBatch(16, 2048)
	benchmarkReceive(b, func(fd int) int {
		n, _ := batch.Recv(fd)
		return n
	})
}
