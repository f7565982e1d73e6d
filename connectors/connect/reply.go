package connect

import (
	"errors"
	"fmt"
)

// DefaultHeaderLimit is the largest reply header block (status line, header
// lines and the blank line) a ReplyParser accepts unless told otherwise.
const DefaultHeaderLimit = 8 << 10

// Verdict is what a ReplyParser has concluded about a web proxy's reply.
type Verdict int

const (
	// NeedMore means the reply is incomplete so far: read more bytes.
	NeedMore Verdict = iota
	// Open means a 2xx reply ended: the tunnel is open.
	Open
	// Refused means the proxy answered with a status other than 2xx.
	Refused
	// Malformed means the bytes are not an acceptable HTTP/1.x reply.
	Malformed
)

// String returns the verdict's name, for log lines and test failures.
func (v Verdict) String() string {
	switch v {
	case NeedMore:
		return "need-more"
	case Open:
		return "open"
	case Refused:
		return "refused"
	case Malformed:
		return "malformed"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Result is what ReplyParser.Feed concluded.
type Result struct {
	// Verdict is the conclusion so far.
	Verdict Verdict
	// Offset, when the tunnel is open, is the index in the chunk just fed
	// where tunnel bytes begin: chunk[Offset:] belongs to the client and
	// must reach it before anything read later.
	Offset int
	// Status is the status line without its CRLF, once it is complete.
	Status string
	// Code is the status code, once the status line is complete.
	Code int
	// Err says what is wrong when the verdict is Malformed.
	Err error
}

// parser states, in the order a well-formed reply visits them.
const (
	stStatus   = iota // inside the status line
	stLineHead        // at the first byte of a header line (or the blank line)
	stName            // inside a header name
	stValue           // inside a header value
	stBadName         // after a byte that cannot be in a name: colon or not?
	stDone            // a verdict other than NeedMore was reached
)

// ReplyParser reads a web proxy's reply to CONNECT incrementally, so that a
// caller on an event loop can feed it whatever each read returned.
//
// It accepts HTTP/1.0 and HTTP/1.1 only. Any 2xx opens the tunnel whatever
// the reason phrase, and Content-Length or Transfer-Encoding on a 2xx are
// ignored (RFC 9110 §9.3.6: a 2xx to CONNECT has no content). Any other
// status is a refusal, reported as soon as the status line is complete;
// the rest of that reply is not read.
//
// Lines must end in CRLF. A bare LF (or a CR without LF) is malformed
// rather than tolerated as RFC 9112 §2.2 allows: the end of the header
// block decides where tunnel bytes begin, and a lenient reading would let
// a proxy and nproxy disagree about it, with the first tunnel bytes taken
// for headers or headers handed to the client. Obsolete line folding,
// NUL and other control bytes, and header lines without a colon are
// malformed for the same reason.
type ReplyParser struct {
	limit  int
	n      int // bytes consumed so far
	state  int
	sawCR  bool // the previous byte of the current line was CR
	bad    byte // the byte that put the parser in stBadName
	status []byte
	res    Result
}

// NewReplyParser returns a parser that refuses header blocks longer than
// limit bytes; limit <= 0 means DefaultHeaderLimit.
func NewReplyParser(limit int) *ReplyParser {
	if limit <= 0 {
		limit = DefaultHeaderLimit
	}
	return &ReplyParser{limit: limit}
}

// Feed consumes the next chunk of the reply. Once the tunnel is open,
// further chunks are all tunnel bytes (Offset 0); after a refusal or a
// malformed reply, Feed keeps returning that verdict.
func (p *ReplyParser) Feed(chunk []byte) Result {
	if p.state == stDone {
		r := p.res
		r.Offset = 0
		return r
	}
	for i, c := range chunk {
		p.n++
		var v Verdict
		if p.n > p.limit {
			v = p.fail(fmt.Errorf("reply headers exceed %d bytes", p.limit))
		} else {
			v = p.step(c)
		}
		if v != NeedMore {
			p.res.Verdict = v
			p.res.Offset = i + 1
			p.state = stDone
			return p.res
		}
	}
	return p.res
}

// step consumes one byte and returns the verdict it leads to.
func (p *ReplyParser) step(c byte) Verdict {
	switch {
	case c == 0:
		return p.fail(errors.New("NUL byte in reply headers"))
	case p.sawCR && c != '\n':
		return p.fail(errors.New("CR not followed by LF in reply headers"))
	case c == '\n' && !p.sawCR:
		return p.fail(errors.New("bare LF in reply headers (lines must end in CRLF)"))
	case c == '\r':
		p.sawCR = true
		return NeedMore
	case c == '\n':
		p.sawCR = false
		return p.endLine()
	}
	switch p.state {
	case stStatus:
		p.status = append(p.status, c)
	case stLineHead:
		return p.lineHead(c)
	case stName:
		return p.nameByte(c)
	case stValue:
		return p.valueByte(c)
	case stBadName:
		if c == ':' {
			return p.fail(fmt.Errorf("invalid byte %q in reply header name", p.bad))
		}
	}
	return NeedMore
}

// endLine acts on a CRLF.
func (p *ReplyParser) endLine() Verdict {
	switch p.state {
	case stStatus:
		return p.endStatus()
	case stName, stBadName:
		return p.fail(errors.New("reply header line without a colon"))
	case stValue:
		p.state = stLineHead
		return NeedMore
	}
	return Open // CRLF at the head of a line: the blank line
}

// endStatus judges the complete status line.
func (p *ReplyParser) endStatus() Verdict {
	p.res.Status = string(p.status)
	code, err := parseStatusLine(p.status)
	if err != nil {
		return p.fail(err)
	}
	p.res.Code = code
	if code < 200 || code > 299 {
		return Refused
	}
	p.state = stLineHead
	return NeedMore
}

func (p *ReplyParser) lineHead(c byte) Verdict {
	switch {
	case c == ' ' || c == '\t':
		return p.fail(errors.New("obsolete line folding in reply headers"))
	case c == ':':
		return p.fail(errors.New("empty header name in reply"))
	case !isTchar(c):
		return p.fail(fmt.Errorf("invalid byte %q in reply header name", c))
	}
	p.state = stName
	return NeedMore
}

// nameByte does not fail at once on a byte that has no place in a name:
// a line with no colon at all is better reported as such.
func (p *ReplyParser) nameByte(c byte) Verdict {
	switch {
	case c == ':':
		p.state = stValue
	case !isTchar(c):
		p.state, p.bad = stBadName, c
	}
	return NeedMore
}

func (p *ReplyParser) valueByte(c byte) Verdict {
	if c != '\t' && (c < ' ' || c == 0x7f) {
		return p.fail(fmt.Errorf("control byte %q in reply header value", c))
	}
	return NeedMore
}

func (p *ReplyParser) fail(err error) Verdict {
	p.res.Err = err
	return Malformed
}

// parseStatusLine checks `HTTP/1.x SP 3DIGIT [SP reason]` and returns the
// code. The reason phrase may be absent: proxies in the field omit it.
func parseStatusLine(line []byte) (int, error) {
	const version = len("HTTP/1.x")
	if len(line) < version || string(line[:7]) != "HTTP/1." {
		return 0, fmt.Errorf("status line %q is not HTTP/1.x", line)
	}
	if line[7] != '0' && line[7] != '1' {
		return 0, fmt.Errorf("unsupported HTTP version %q", line[:version])
	}
	rest := line[version:]
	if len(rest) < 4 || rest[0] != ' ' {
		return 0, fmt.Errorf("status line %q has no 3-digit status code", line)
	}
	code := 0
	for _, d := range rest[1:4] {
		if d < '0' || d > '9' {
			return 0, fmt.Errorf("status line %q has no 3-digit status code", line)
		}
		code = code*10 + int(d-'0')
	}
	if len(rest) > 4 && rest[4] != ' ' {
		return 0, fmt.Errorf("status line %q has no 3-digit status code", line)
	}
	if code < 100 || code > 599 {
		return 0, fmt.Errorf("status code %d out of range in %q", code, line)
	}
	for _, c := range rest[4:] {
		if c != '\t' && (c < ' ' || c == 0x7f) {
			return 0, fmt.Errorf("control byte %q in status line", c)
		}
	}
	return code, nil
}

// isTchar reports whether c may appear in a header name (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
