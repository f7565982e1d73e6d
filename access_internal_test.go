package nproxy

import (
	"encoding/json"
	"testing"
	"time"
)

// An access line is appended to the loop's buffer without allocating.
func TestAccessLineAllocations(t *testing.T) {
	f := accessFields{proxy: 1, client: "127.0.0.1:40000", target: "127.0.0.1:9876",
		in: 12, out: 3400, duration: 1500 * time.Millisecond, end: "eof"}
	buf := make([]byte, 0, 1024)
	now := time.Now()
	for name, appendLine := range map[string]func([]byte, time.Time) []byte{"text": f.appendText, "json": f.appendJSON} {
		if n := testing.AllocsPerRun(100, func() { buf = appendLine(buf[:0], now) }); n != 0 {
			t.Errorf("%s: %v allocations per line", name, n)
		}
	}
}

// appendJSONString writes what encoding/json reads back as it reads its
// own encoding of the string, whatever the bytes.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "127.0.0.1:80", `a"b\c`, "new\nline\x00\x1f\x7f", "caf\xc3\xa9", "bad\xff\xfeutf8", "\xe2\x82", "<&>\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendJSONString(nil, s)
		var back, want string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q: %s is not JSON: %v", s, got, err)
		}
		ref, _ := json.Marshal(s)
		json.Unmarshal(ref, &want)
		if back != want {
			t.Errorf("%q: read back %q, encoding/json's %q", s, back, want)
		}
	})
}
