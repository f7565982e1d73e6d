package nproxytest_test

import (
	"os/exec"
	"testing"
	"time"

	"github.com/nproxy/nproxy/nproxytest"
)

// RunFor feeds its input, returns the output, and kills a command that
// outlives its time.
func TestRunFor(t *testing.T) {
	t.Parallel()
	out, _, err := nproxytest.RunFor(exec.Command(nproxytest.Command(t, "cat")), []byte("zlonk"), 10*time.Second)
	if err != nil || string(out) != "zlonk" {
		t.Errorf("cat: %q, %v", out, err)
	}
	start := time.Now()
	if _, _, err := nproxytest.RunFor(exec.Command(nproxytest.Command(t, "sleep"), "30"), nil, 100*time.Millisecond); err == nil {
		t.Error("sleep 30 ended well within 100 ms")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("RunFor returned after %v", d)
	}
}
