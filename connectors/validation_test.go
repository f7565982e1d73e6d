package connectors

import (
	"errors"
	"testing"
)

// Run runs its steps once, stops at the first failure, and returns the
// same error on every call.
func TestValidationRunsOnce(t *testing.T) {
	var v Validation
	bad := errors.New("bad")
	var calls []string
	step := func(name string, err error) func() error {
		return func() error { calls = append(calls, name); return err }
	}
	for range 3 {
		if err := v.Run(step("a", nil), step("b", bad), step("c", nil)); err != bad {
			t.Fatalf("Run = %v, want %v", err, bad)
		}
	}
	if got := len(calls); got != 2 || calls[0] != "a" || calls[1] != "b" {
		t.Fatalf("steps run: %v, want [a b]", calls)
	}
	var ok Validation
	if err := ok.Run(step("d", nil)); err != nil {
		t.Fatalf("Run of passing steps = %v", err)
	}
}
