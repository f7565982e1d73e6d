package main

import (
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/nproxy/nproxy/nproxytest"
)

// TestSocks5Command: the command line's dotted users and ';'-separated
// allow rules reach the socks5 connector; curl goes through with the
// password to an allowed port, and is refused (reply 2) elsewhere.
func TestSocks5Command(t *testing.T) {
	curl := nproxytest.Command(t, "curl")
	ln := nproxytest.Listener(t)
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello") }))
	web := ln.Addr().(*net.TCPAddr).Port
	port := unusedPort(t, "127.0.0.1")
	startNproxy(t, nil, []int{port}, "--in",
		fmt.Sprintf("type=socks5,host=127.0.0.1,port=%d,users.alice=s3cret,allow=127.0.0.1:%d;*.example.com:443", port, web),
		"--out", "type=tcp")
	get := func(url string) (string, error) {
		out, err := exec.Command(curl, "-sS", "--max-time", "10", "--socks5", fmt.Sprintf("alice:s3cret@127.0.0.1:%d", port), url).CombinedOutput()
		return string(out), err
	}
	if out, err := get(fmt.Sprintf("http://127.0.0.1:%d/", web)); err != nil || out != "hello" {
		t.Fatalf("allowed port: %v: %s", err, out)
	}
	if out, err := get(fmt.Sprintf("http://127.0.0.1:%d/", web+1)); err == nil || !strings.Contains(out, "(2)") {
		t.Fatalf("port outside the rules: %v: %s", err, out)
	}
}
