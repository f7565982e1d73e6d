package dnstunnel

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"strings"

	"github.com/miekg/dns"
)

// Query kinds and flags (see docs/dns.md).
const (
	kindStart = 1
	kindData  = 2
	kindClose = 3
	kindFIN   = 0x80

	flagFIN   = 1
	flagReset = 2

	queryHeaderLen  = 31
	answerHeaderLen = 17
	macLen          = 8
	maxNameLen      = 253
	maxLabelLen     = 63
	ednsSize        = 1232
	maxMessage      = 4096
	defaultMaxDown  = 1000 // shrunk by the server to what fits
	truncatedDown   = 100  // fits a 512-byte answer
	txtStringLen    = 255
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// query is the header of a query name, and its data.
type query struct {
	kind    byte
	session uint32
	up      uint32
	down    uint32
	max     uint16
	nonce   uint32
	time    uint32
	data    []byte
	header  [queryHeaderLen]byte // as sent, MAC included: the answer's MAC covers it
}

// answer is the content of an answer's TXT record.
type answer struct {
	flags byte
	up    uint32
	down  uint32
	data  []byte
}

var (
	errNotOurs = errors.New("name outside the tunnel's domain")
	errName    = errors.New("undecodable query name")
	errMAC     = errors.New("bad MAC")
	errAnswer  = errors.New("malformed answer")
)

func mac(key []byte, parts ...[]byte) []byte {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)[:macLen]
}

// maxUp is how many data bytes fit in a query name under domain: labels of
// 63 base32 characters (5 bits each) and the dots between them, after the
// header label and the domain.
func maxUp(domain string) int {
	room := maxNameLen - len(domain) - 1 - b32.EncodedLen(queryHeaderLen) - 1
	chars := room - room/(maxLabelLen+1) // one dot per full label
	if chars <= 0 {
		return 0
	}
	return chars * 5 / 8
}

// encodeQuery makes the query name for q under domain (which ends with a
// dot, as dns.Fqdn makes it), filling q.header.
func encodeQuery(key []byte, domain string, q *query) string {
	h := q.header[:]
	h[0] = q.kind
	binary.BigEndian.PutUint32(h[1:], q.session)
	binary.BigEndian.PutUint32(h[5:], q.up)
	binary.BigEndian.PutUint32(h[9:], q.down)
	binary.BigEndian.PutUint16(h[13:], q.max)
	binary.BigEndian.PutUint32(h[15:], q.nonce)
	binary.BigEndian.PutUint32(h[19:], q.time)
	copy(h[23:], mac(key, h[:23], q.data))
	var b strings.Builder
	data := strings.ToLower(b32.EncodeToString(q.data))
	for len(data) > 0 {
		n := min(len(data), maxLabelLen)
		b.WriteString(data[:n])
		b.WriteByte('.')
		data = data[n:]
	}
	b.WriteString(strings.ToLower(b32.EncodeToString(h)))
	b.WriteByte('.')
	b.WriteString(domain)
	return b.String()
}

// decodeQuery parses a query name under domain (lower case, ending with a
// dot), whatever the case of its letters, and checks its MAC.
func decodeQuery(key []byte, domain, name string) (query, error) {
	var q query
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, "."+domain) || len(name) > maxNameLen+1 {
		return q, errNotOurs
	}
	labels := strings.Split(strings.TrimSuffix(name, "."+domain), ".")
	hl := labels[len(labels)-1]
	if b32.DecodedLen(len(hl)) != queryHeaderLen {
		return q, errName
	}
	if _, err := b32.Decode(q.header[:], []byte(strings.ToUpper(hl))); err != nil {
		return q, errName
	}
	data, err := b32.DecodeString(strings.ToUpper(strings.Join(labels[:len(labels)-1], "")))
	if err != nil {
		return q, errName
	}
	h := q.header[:]
	if !hmac.Equal(h[23:], mac(key, h[:23], data)) {
		return q, errMAC
	}
	q.kind = h[0]
	q.session = binary.BigEndian.Uint32(h[1:])
	q.up = binary.BigEndian.Uint32(h[5:])
	q.down = binary.BigEndian.Uint32(h[9:])
	q.max = binary.BigEndian.Uint16(h[13:])
	q.nonce = binary.BigEndian.Uint32(h[15:])
	q.time = binary.BigEndian.Uint32(h[19:])
	q.data = data
	return q, nil
}

// encodeAnswer makes the TXT strings of a, MAC'd with the query's header.
func encodeAnswer(key []byte, q *query, a *answer) []string {
	b := make([]byte, answerHeaderLen, answerHeaderLen+len(a.data))
	b[0] = a.flags
	binary.BigEndian.PutUint32(b[1:], a.up)
	binary.BigEndian.PutUint32(b[5:], a.down)
	copy(b[9:], mac(key, b[:9], a.data, q.header[:]))
	b = append(b, a.data...)
	var txt []string
	for len(b) > 0 {
		n := min(len(b), txtStringLen)
		txt = append(txt, escapeTXT(b[:n]))
		b = b[n:]
	}
	return txt
}

// decodeAnswer parses the TXT strings of an answer to q and checks its MAC.
func decodeAnswer(key []byte, q *query, txt []string) (answer, error) {
	var a answer
	var b []byte
	for _, s := range txt {
		b = unescapeTXT(b, s)
	}
	if len(b) < answerHeaderLen {
		return a, errAnswer
	}
	a.data = b[answerHeaderLen:]
	if !hmac.Equal(b[9:17], mac(key, b[:9], a.data, q.header[:])) {
		return a, errMAC
	}
	a.flags = b[0]
	a.up = binary.BigEndian.Uint32(b[1:])
	a.down = binary.BigEndian.Uint32(b[5:])
	return a, nil
}

// escapeTXT writes raw bytes in the presentation form miekg/dns packs: only
// the backslash is special.
func escapeTXT(b []byte) string {
	return strings.ReplaceAll(string(b), `\`, `\\`)
}

// unescapeTXT appends to b the bytes of a TXT string as miekg/dns unpacks
// it: \DDD for a byte, \X for X.
func unescapeTXT(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b = append(b, c)
			continue
		}
		i++
		if i+2 < len(s) && isDigit(s[i]) && isDigit(s[i+1]) && isDigit(s[i+2]) {
			b = append(b, (s[i]-'0')*100+(s[i+1]-'0')*10+(s[i+2]-'0'))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return b
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// newQueryMsg makes the DNS message for a query name.
func newQueryMsg(name string) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeTXT)
	m.SetEdns0(ednsSize, false)
	return m
}
