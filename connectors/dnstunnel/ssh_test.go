package dnstunnel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors/dual/dualtest"
	"github.com/nproxy/nproxy/nproxytest"
)

// An ssh session to a real sshd through the tunnel and a real dnsmasq: a
// command's input goes up, its output comes down.
func TestSSHThroughTunnel(t *testing.T) {
	nproxytest.CaptureLog(t, 1)
	sshd := dualtest.StartSSHD(t)
	_, p, _ := net.SplitHostPort(sshd.Addr)
	target, _ := strconv.Atoi(p)
	port, _, _ := startTunnel(t, target, nil)
	input := make([]byte, 64<<10)
	rand.Read(input)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := sshd.Client(ctx, "127.0.0.1:"+strconv.Itoa(port), "sha256sum")
	cmd.Stdin = bytes.NewReader(input)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ssh through the tunnel: %v: %s", err, out)
	}
	sum := sha256.Sum256(input)
	if !strings.HasPrefix(string(out), hex.EncodeToString(sum[:])) {
		t.Fatalf("sha256sum over ssh said %q, want %x", out, sum)
	}
}
