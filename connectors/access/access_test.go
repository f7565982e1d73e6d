package access

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRules(t *testing.T) {
	rs, err := ParseRules([]string{"10.0.0.0/8:*", "*.example.com:443;[::1]:8000-8100", "localhost:22"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host string
		port int
		want bool
	}{
		{"10.1.2.3", 1, true}, {"11.1.2.3", 1, false}, {"www.Example.com", 443, true},
		{"example.com", 443, false}, {"www.example.com", 444, false}, {"::1", 8050, true},
		{"::1", 8101, false}, {"localhost", 22, true}, {"localhost", 23, false},
		{"evil.com", 443, false}, {"10.example.com", 1, false},
	} {
		if got := rs.Permit(tc.host, tc.port); got != tc.want {
			t.Errorf("Permit(%s, %d) = %v", tc.host, tc.port, got)
		}
	}
	if !(Rules{{Pattern: "*", Low: 1, High: 65535}}).Permit("anything", 9) {
		t.Error("*:* refuses")
	}
	for _, bad := range []string{"nocolon", "*:0", "*:70000", "*:9-8", "a b:1", "10.0.0.0/33:1", "*x:1", "a*b:1"} {
		if _, err := ParseRules([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestUsers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "users")
	os.WriteFile(file, []byte("# comment\nbob:pw:with:colons\n\n"), 0o600)
	u, err := LoadUsers(map[string]any{"alice": "a"}, file)
	if err != nil {
		t.Fatal(err)
	}
	if !u.Check("alice", "a") || !u.Check("bob", "pw:with:colons") || u.Check("alice", "b") || u.Check("eve", "") || u.Check("eve", "\x00nobody") {
		t.Errorf("Check is wrong: %v", u)
	}
	os.WriteFile(file, []byte("nopassword\n"), 0o600)
	if _, err := LoadUsers(nil, file); err == nil {
		t.Error("a line without a colon is accepted")
	}
}

func FuzzRules(f *testing.F) {
	f.Add("10.0.0.0/8:*;*.example.com:443", "www.example.com", 443)
	f.Add("[::1]:1-2", "::1", 2)
	f.Fuzz(func(t *testing.T, rule, host string, port int) {
		rs, err := ParseRules([]string{rule})
		if err == nil {
			rs.Permit(host, port)
		}
	})
}
