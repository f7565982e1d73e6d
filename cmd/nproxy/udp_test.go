package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/nproxytest"
)

// The udp connectors from a YAML file: a datagram goes through to a UDP
// echo server and back, the flow counts as one connection, and
// --max-connections 1 makes nproxy exit once that flow has expired.
func TestUDPFromConfigFile(t *testing.T) {
	echo := nproxytest.UDPEcho(t, "127.0.0.1")
	in := unusedPort(t, "127.0.0.1")
	path := filepath.Join(t.TempDir(), "udp.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`verbosity: 2
max_connections: 1
proxies:
  - in:  {type: udp, host: 127.0.0.1, port: %d, timeout: 0.3, max_flows: 100, max_datagram: 1400}
    out: {type: udp, host: 127.0.0.1, port: %d}
`, in, echo)), 0o644)
	p := startChild(t, nproxyBin, "-c", path)

	c, err := net.Dial("udp", addrOf("127.0.0.1", in))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Until nproxy has bound its port the datagram is refused or lost:
	// send again until the echo comes.
	buf := make([]byte, 2048)
	var got string
	mustEventually(t, 5*time.Second, "an echo through nproxy", func() bool {
		c.Write([]byte("over udp"))
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := c.Read(buf)
		got = string(buf[:max(n, 0)])
		return err == nil
	})
	if got != "over udp" {
		t.Fatalf("got %q", got)
	}
	if code := p.exitCode(t, 5*time.Second); code != 0 {
		t.Fatalf("exit status %d after the flow expired; log:\n%s", code, p.stderr.String())
	}
	if log := p.stderr.String(); !strings.Contains(log, "connection from 127.0.0.1:") {
		t.Fatalf("no connection logged:\n%s", log)
	}
}
