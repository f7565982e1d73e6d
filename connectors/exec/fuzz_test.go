package exec

import (
	"bytes"
	"fmt"
	"testing"
)

// FuzzStderrLines feeds a child's standard error to the line splitter in
// reads of arbitrary size: each line shorter than MaxLineLength comes out
// whole, each longer one as its first MaxLineLength bytes marked cut, in
// order, and a last line without a newline at EOF.
func FuzzStderrLines(f *testing.F) {
	f.Add([]byte("one\ntwo\n"), uint16(3))
	f.Add(bytes.Repeat([]byte("x"), 10000), uint16(4000))
	f.Add([]byte("\n\n\nend"), uint16(1))
	f.Add(append(bytes.Repeat([]byte("y"), 4096), "\nshort\n"...), uint16(4096))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint16) {
		var got []string
		e := &stderrLog{emit: func(line []byte, cut bool) {
			got = append(got, fmt.Sprintf("%v %q", cut, line))
		}}
		e.start()
		step := max(int(chunk), 1)
		for rest := data; len(rest) > 0; {
			n := min(step, len(rest), cap(e.buf)-len(e.buf))
			e.buf = append(e.buf, rest[:n]...)
			rest = rest[n:]
			e.lines()
		}
		if len(e.buf) > 0 && !e.cutting { // what close does at EOF
			e.emit(e.buf, false)
		}
		var want []string
		lines := bytes.Split(data, []byte("\n"))
		for i, line := range lines {
			switch {
			case i == len(lines)-1 && len(line) == 0:
			case len(line) >= MaxLineLength:
				want = append(want, fmt.Sprintf("%v %q", true, line[:MaxLineLength]))
			default:
				want = append(want, fmt.Sprintf("%v %q", false, line))
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("logged %d lines, want %d:\n%.300s\n%.300s", len(got), len(want), got, want)
		}
	})
}
