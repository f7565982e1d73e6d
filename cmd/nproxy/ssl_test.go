package main

import (
	"fmt"
	"github.com/nproxy/nproxy/nproxytest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
)

// The ssl connector through the command: openssl s_client speaks TLS to an
// ssl in, nproxy relays the plaintext to a socat echo, and the line comes
// back over TLS.
func TestSSLInThroughCommand(t *testing.T) {
	openssl := nproxytest.Command(t, "openssl")
	certs := ssltest.New(t)
	echo := socatEcho(t, "127.0.0.1")
	in := unusedPort(t, "127.0.0.1")
	p := startChild(t, nproxyBin, "-vv",
		"--in", fmt.Sprintf("type=ssl,host=127.0.0.1,port=%d,SSL_cert_file=%s,SSL_key_file=%s", in, certs.ServerCert, certs.ServerKey),
		"--out", tcpSpec("127.0.0.1", echo))
	waitListening(t, p, in)

	for _, version := range []string{"-tls1_2", "-tls1_3"} {
		cmd := exec.Command(openssl, "s_client", "-quiet", version, "-CAfile", certs.CA,
			"-verify_return_error", "-connect", addrOf("127.0.0.1", in))
		out, stderr, err := nproxytest.RunFor(cmd, []byte("hello over tls\n"), 10*time.Second)
		if !strings.Contains(string(out), "hello over tls") {
			t.Errorf("%s: s_client got %q (%v); stderr %s; nproxy log:\n%s", version, out, err, stderr, p.stderr.String())
		}
	}
}
