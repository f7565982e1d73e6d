package dualtest

import (
	"context"
	"testing"
	"time"
)

func TestSSHD(t *testing.T) {
	s := StartSSHD(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := s.Client(ctx, s.Addr, "echo", "zlonk").CombinedOutput()
	if err != nil || string(out) != "zlonk\n" {
		t.Fatalf("ssh: %v, output %q", err, out)
	}
}

func TestTLSServer(t *testing.T) {
	s := StartTLSServer(t)
	for _, line := range []string{"zlonk", "zowie"} { // one connection after another
		want := string([]byte{line[4], line[3], line[2], line[1], line[0]})
		if got := TLSRoundTrip(t, s.Addr, line); got != want {
			t.Fatalf("s_server answered %q, want %q", got, want)
		}
	}
}
