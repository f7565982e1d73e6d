package dual

import (
	"bytes"
	"regexp"
)

// Verdict is a probe's answer about the bytes a client has sent so far.
type Verdict int8

// The three answers a probe can give. The probes here, Regex aside, never
// change a Match or a NoMatch when given more bytes that start with the
// same ones, so a decision does not depend on how the network split them.
const (
	NeedMore Verdict = iota // the bytes so far are a prefix of something the probe accepts
	Match                   // the bytes are the protocol the probe looks for
	NoMatch                 // no continuation of these bytes can match
)

// String names the verdict for messages.
func (v Verdict) String() string {
	switch v {
	case Match:
		return "match"
	case NoMatch:
		return "no-match"
	}
	return "need-more"
}

// Probe recognises a protocol from the first bytes a client sends.
type Probe interface {
	// Check judges b, all the bytes received so far from the first one on.
	// It must not keep b, and must be safe for concurrent use.
	Check(b []byte) Verdict
}

// SSH matches a client that opens with an SSH identification string
// ("SSH-2.0-..."), as OpenSSH's client does without waiting for the server.
type SSH struct{}

var sshMagic = []byte("SSH-")

// Check implements Probe.
func (SSH) Check(b []byte) Verdict { return prefixVerdict(b, sshMagic) }

// prefixVerdict matches b against a fixed opening.
func prefixVerdict(b, magic []byte) Verdict {
	n := min(len(b), len(magic))
	switch {
	case !bytes.Equal(b[:n], magic[:n]):
		return NoMatch
	case n < len(magic):
		return NeedMore
	}
	return Match
}

// Any matches every client that sends at least one byte; put it last.
type Any struct{}

// Check implements Probe.
func (Any) Check(b []byte) Verdict {
	if len(b) == 0 {
		return NeedMore
	}
	return Match
}

// Regex matches when RE matches the bytes received, once at least Min of
// them have arrived. As in sslh, the pattern sees whatever has arrived when
// the count is reached, so anchor it (^...) and make Min cover what it needs.
type Regex struct {
	RE  *regexp.Regexp
	Min int
}

// Check implements Probe.
func (r Regex) Check(b []byte) Verdict {
	if len(b) < max(r.Min, 1) {
		return NeedMore
	}
	if r.RE.Match(b) {
		return Match
	}
	return NoMatch
}

// DefaultMaxProbeBytes bounds how much a client may send before the probes
// must decide: one full TLS record, the largest thing a probe waits for.
const DefaultMaxProbeBytes = 5 + 1<<14

// Probes is an ordered list of probes. The first probe in list order that
// matches wins, and only once every probe before it has said NoMatch, so the
// winner is the same whether the bytes arrive at once or one at a time.
type Probes struct {
	List []Probe
	Max  int // bytes after which an undecided list gives up; 0 means DefaultMaxProbeBytes
}

// Check returns the index of the winning probe with Match, -1 with NoMatch
// when no probe can match (or Max bytes came without a decision), or -1 with
// NeedMore. Bytes past Max are not looked at, so that the answer is the same
// however the bytes arrived.
func (p *Probes) Check(b []byte) (int, Verdict) {
	b = b[:min(len(b), p.limit())]
	for i, probe := range p.List {
		switch probe.Check(b) {
		case Match:
			return i, Match
		case NeedMore:
			if len(b) >= p.limit() {
				return -1, NoMatch
			}
			return -1, NeedMore
		}
	}
	return -1, NoMatch
}

func (p *Probes) limit() int {
	if p.Max > 0 {
		return p.Max
	}
	return DefaultMaxProbeBytes
}

// globMatch reports whether name matches pattern, ASCII case-insensitively,
// where each '*' in pattern stands for any run of characters (dots included).
// It backtracks only to the latest star, so it runs in O(len(pattern)*len(name)).
func globMatch(pattern, name string) bool {
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case p < len(pattern) && lower(pattern[p]) == lower(name[n]):
			p++
			n++
		case star >= 0:
			mark++
			p, n = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// anyGlob reports whether name matches one of patterns.
func anyGlob(patterns []string, name string) bool {
	for _, p := range patterns {
		if globMatch(p, name) {
			return true
		}
	}
	return false
}
