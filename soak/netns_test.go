//go:build soak

package soak

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/nproxy/nproxy/nproxytest"
	"golang.org/x/sys/unix"
)

// openTUN creates TUN device name in ns (IP packets, no packet
// information header), and returns it as a non-blocking file, so that
// Close interrupts a Read.
func openTUN(t *testing.T, ns nproxytest.Netns, name string) *os.File {
	t.Helper()
	var f *os.File
	err := ns.Do(func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF %s: %w", name, err)
		}
		f = os.NewFile(uintptr(fd), name)
		return nil
	})
	if err != nil {
		t.Fatalf("TUN device in %s: %v", ns, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// waitListeningIn waits (10 s at most) until a TCP socket listens on port
// in the network namespace of pid, read from /proc/<pid>/net/tcp.
func waitListeningIn(t *testing.T, p *proc, port int) {
	t.Helper()
	want := fmt.Sprintf(":%04X", port)
	p.waitFor(t, fmt.Sprintf("port %d to listen in its namespace", port), func() bool {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", p.cmd.Process.Pid))
		if err != nil {
			return false
		}
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			fields := strings.Fields(s.Text())
			if len(fields) > 3 && strings.HasSuffix(fields[1], want) && fields[3] == "0A" { // 0A: LISTEN
				return true
			}
		}
		return false
	})
}
