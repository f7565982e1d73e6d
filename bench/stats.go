package main

import (
	"math"
	"sort"
	"time"
)

// table is one scenario's results: a row per peer, a column group per metric.
type table struct {
	key     string // file name of the chart
	title   string
	method  string // how it was measured, for the report
	metrics []*metric
	peers   []string
	ref     string              // the nproxy peer every ratio is taken against
	notes   map[string][]string // per peer: errors, partial results
	load    [2]string           // /proc/loadavg before and after: others' work on the machine
}

// metric is one measured quantity with a value per round for every peer.
type metric struct {
	name        string
	unit        string
	lowerBetter bool
	noRatio     bool // no nproxy ÷ peer: a context figure, or values below resolution
	context     bool // neither higher nor lower is better
	vals        map[string][]float64
}

func newTable(key, title, method string, peers []*peer, sc string, metrics ...*metric) *table {
	t := &table{key: key, title: title, method: method, metrics: metrics, notes: map[string][]string{}}
	for _, p := range peers {
		if p.in(sc) {
			t.peers = append(t.peers, p.name)
		}
		if t.ref == "" && isNproxy(p.name) {
			t.ref = p.name
		}
	}
	for _, m := range metrics {
		m.vals = map[string][]float64{}
	}
	return t
}

func higher(name, unit string) *metric { return &metric{name: name, unit: unit} }
func lower(name, unit string) *metric  { return &metric{name: name, unit: unit, lowerBetter: true} }
func info(name, unit string) *metric {
	return &metric{name: name, unit: unit, noRatio: true, context: true}
}

func (m *metric) add(peer string, v float64) { m.vals[peer] = append(m.vals[peer], v) }

func (t *table) note(peer, format string, args ...any) {
	msg := sprintf(format, args...)
	for _, n := range t.notes[peer] {
		if n == msg {
			return
		}
	}
	t.notes[peer] = append(t.notes[peer], msg)
}

// summary is the median and the spread (min and max) over rounds.
type summary struct {
	med, min, max float64
	n             int
}

func summarize(v []float64) summary {
	if len(v) == 0 {
		return summary{med: math.NaN(), min: math.NaN(), max: math.NaN()}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return summary{med: med, min: s[0], max: s[len(s)-1], n: len(s)}
}

// percentile is exact: the smallest sample with at least p of all samples at
// or below it (samples must be sorted).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	if i < 0 {
		i = 0
	}
	return sorted[i]
}

// rotated returns peers starting at the round-th one, so that no peer is
// always measured first (or last) in a round.
func rotated(peers []*peer, round int) []*peer {
	if len(peers) == 0 {
		return nil
	}
	k := round % len(peers)
	return append(append([]*peer{}, peers[k:]...), peers[:k]...)
}
