package main

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

func TestPercentileIsExact(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 1000; i++ {
		s = append(s, time.Duration(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 500}, {0.99, 990}, {0.999, 999}, {1, 1000}, {0.0001, 1}} {
		if got := percentile(s, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	s := summarize([]float64{3, 1, 2, 10})
	if s.med != 2.5 || s.min != 1 || s.max != 10 || s.n != 4 {
		t.Fatalf("got %+v", s)
	}
}

func TestRotated(t *testing.T) {
	ps := []*peer{{name: "a"}, {name: "b"}, {name: "c"}}
	var names []string
	for _, p := range rotated(ps, 4) {
		names = append(names, p.name)
	}
	if got := strings.Join(names, ""); got != "bca" {
		t.Fatalf("round 4 order %q, want bca", got)
	}
}

// TestChartIsWellFormed: the SVG parses, and a peer with no result gets a
// label instead of a bar.
func TestChartIsWellFormed(t *testing.T) {
	m := higher("throughput", "Gbit/s")
	tb := newTable("k", "T <&>", "", []*peer{{name: "nproxy"}, {name: "x"}}, "any", m)
	m.add("nproxy", 1)
	m.add("nproxy", 3)
	svg := svgChart(tb)
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := d.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("%v\n%s", err, svg)
			}
			break
		}
	}
	if !strings.Contains(svg, "no result") {
		t.Fatal("peer without values not marked")
	}
}
