package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Chart geometry, in SVG pixels.
const (
	chartLabelW = 150
	chartBarW   = 430
	chartValueW = 110
	chartRowH   = 20
	chartTitleH = 26
)

// svgChart draws one panel per metric: a horizontal bar per peer at the
// median, a whisker from min to max over rounds, nproxy in its own colour.
func svgChart(t *table) string {
	var b strings.Builder
	width := chartLabelW + chartBarW + chartValueW
	height := 8
	for range t.metrics {
		height += chartTitleH + chartRowH*len(t.peers) + 12
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	y := 8
	for _, m := range t.metrics {
		better := "higher is better"
		if m.lowerBetter {
			better = "lower is better"
		}
		fmt.Fprintf(&b, `<text x="4" y="%d" font-weight="bold">%s: %s, %s (median, whisker min–max)</text>`+"\n",
			y+16, html.EscapeString(t.title), html.EscapeString(m.name+" "+m.unit), better)
		y += chartTitleH
		scale := 0.0
		for _, p := range t.peers {
			if s := summarize(m.vals[p]); !math.IsNaN(s.max) {
				scale = math.Max(scale, s.max)
			}
		}
		if scale <= 0 {
			scale = 1
		}
		for _, p := range t.peers {
			drawBar(&b, p, summarize(m.vals[p]), scale, y)
			y += chartRowH
		}
		y += 12
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func drawBar(b *strings.Builder, peer string, s summary, scale float64, y int) {
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", chartLabelW-6, y+14, html.EscapeString(peer))
	if math.IsNaN(s.med) {
		fmt.Fprintf(b, `<text x="%d" y="%d" fill="#888">no result</text>`+"\n", chartLabelW+4, y+14)
		return
	}
	px := func(v float64) float64 { return chartLabelW + v/scale*chartBarW }
	color := "#7a8fb8"
	if isNproxy(peer) {
		color = "#d9480f"
	}
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n",
		chartLabelW, y+3, math.Max(px(s.med)-chartLabelW, 0.5), chartRowH-6, color)
	if s.n > 1 {
		fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="black"/>`+"\n", px(s.min), px(s.max), y+chartRowH/2, y+chartRowH/2)
		for _, v := range []float64{s.min, s.max} {
			fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="black"/>`+"\n", px(v), px(v), y+5, y+chartRowH-5)
		}
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%d">%s</text>`+"\n", px(s.max)+4, y+14, num(s.med))
}

// num prints a value with about three significant digits.
func num(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "—"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
