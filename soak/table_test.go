//go:build soak

package soak

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// row is one case's line in the summary table.
type row struct {
	name   string
	figure []string
	status string // PASS, FAIL or SKIP, set when the case ends
	took   time.Duration
}

var table struct {
	sync.Mutex
	rows []*row
}

// begin adds a row for the case t runs; its verdict is t's, taken when the
// case ends (the first cleanup registered runs last, after every other).
func begin(t *testing.T, name string) *row {
	r := &row{name: name}
	start := time.Now()
	t.Cleanup(func() {
		r.took = time.Since(start).Round(time.Second)
		switch {
		case t.Skipped():
			r.status = "SKIP"
		case t.Failed():
			r.status = "FAIL"
		default:
			r.status = "PASS"
		}
		table.Lock()
		table.rows = append(table.rows, r)
		table.Unlock()
	})
	return r
}

// add appends a figure to the row and to the test's log.
func (r *row) add(t *testing.T, format string, args ...any) {
	t.Helper()
	s := fmt.Sprintf(format, args...)
	t.Log(s)
	r.figure = append(r.figure, s)
}

// printTable writes the summary as a Markdown table.
func printTable(w io.Writer, soak, took time.Duration) {
	table.Lock()
	defer table.Unlock()
	fmt.Fprintf(w, "\nnproxy soak: SOAK=%v, %v in all\n\n", soak, took.Round(time.Second))
	fmt.Fprintln(w, "| case | result | time | figures |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, r := range table.rows {
		fmt.Fprintf(w, "| %s | %s | %v | %s |\n", r.name, r.status, r.took, strings.Join(r.figure, "; "))
	}
}
