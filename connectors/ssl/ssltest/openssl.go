package ssltest

import (
	"bufio"
	"bytes"
	"github.com/nproxy/nproxy/nproxytest"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// OpenSSL starts `openssl args...` (s_client, s_server, ...) with pipes on
// its stdin and stdout, and skips the test when openssl is not installed.
// The process is killed when the test ends; its stderr is logged if the
// test failed.
func OpenSSL(t testing.TB, args ...string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	path := nproxytest.Command(t, "openssl")
	cmd := exec.Command(path, args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("openssl %s stderr:\n%s", strings.Join(args, " "), stderr.String())
		}
	})
	return cmd, in, bufio.NewReader(out)
}
