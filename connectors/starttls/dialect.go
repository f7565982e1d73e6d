package starttls

import (
	"bytes"
	"os"
	"strings"
	"sync"
)

// verdict is what follows the answer to a command.
type verdict uint8

const (
	// carryOn: read the next command.
	carryOn verdict = iota
	// upgrade: the client asked for TLS; the handshake starts once the
	// answer is written.
	upgrade
	// quit: close once the answer is written.
	quit
)

// dialect is the part of a protocol nproxy speaks before TLS: its opening,
// its answers, the lines it closes with, and what the real server's greeting
// looks like.
type dialect struct {
	// greeting is sent to the client when it connects.
	greeting func() string
	// answer replies to one command line (without its CR LF).
	answer func(line []byte) (string, verdict)
	// tooMany, tooLong and timedOut are sent before the connection is
	// closed for too many commands without STARTTLS, a line over maxLine,
	// and the deadline.
	tooMany, tooLong, timedOut string
	// serverLine checks one line of the server's greeting (without its CR
	// LF): whether it is acceptable, and whether it is the last.
	serverLine func(line []byte) (ok, last bool)
}

// dialects are the protocols known to the protocol parameter.
var dialects = map[string]*dialect{
	"smtp": {
		greeting:   func() string { return "220 " + hostname() + " ESMTP nproxy\r\n" },
		answer:     smtpAnswer,
		tooMany:    "421 4.7.0 Too many commands without STARTTLS, closing\r\n",
		tooLong:    "500 5.5.6 Line too long, closing\r\n",
		timedOut:   "421 4.4.2 Timeout waiting for STARTTLS, closing\r\n",
		serverLine: smtpServerLine,
	},
	"imap": {
		greeting:   func() string { return "* OK [CAPABILITY " + imapCaps + "] nproxy ready\r\n" },
		answer:     imapAnswer,
		tooMany:    "* BYE Too many commands without STARTTLS\r\n",
		tooLong:    "* BYE Line too long\r\n",
		timedOut:   "* BYE Timeout waiting for STARTTLS\r\n",
		serverLine: prefixLine("* OK"),
	},
	"pop3": {
		greeting:   func() string { return "+OK nproxy POP3 ready\r\n" },
		answer:     pop3Answer,
		tooMany:    "-ERR Too many commands without STLS\r\n",
		tooLong:    "-ERR Line too long\r\n",
		timedOut:   "-ERR Timeout waiting for STLS\r\n",
		serverLine: prefixLine("+OK"),
	},
}

// hostname names this machine in SMTP's greeting and EHLO answer, as
// RFC 5321 asks.
var hostname = sync.OnceValue(func() string {
	if h, err := os.Hostname(); err == nil && h != "" && !strings.ContainsAny(h, " \r\n") {
		return h
	}
	return "localhost"
})

// verb splits a command line into its upper-cased first word and the rest.
func verb(line []byte) (string, []byte) {
	v, rest, _ := bytes.Cut(line, []byte(" "))
	return strings.ToUpper(string(v)), bytes.TrimSpace(rest)
}

// smtpAnswer speaks RFC 3207's side of SMTP before TLS. A client's second
// EHLO, after TLS, goes to the real server.
func smtpAnswer(line []byte) (string, verdict) {
	cmd, arg := verb(line)
	switch cmd {
	case "EHLO":
		if len(arg) == 0 {
			return "501 5.5.4 EHLO needs a domain\r\n", carryOn
		}
		return "250-" + hostname() + "\r\n250 STARTTLS\r\n", carryOn
	case "HELO":
		if len(arg) == 0 {
			return "501 5.5.4 HELO needs a domain\r\n", carryOn
		}
		return "250 " + hostname() + "\r\n", carryOn
	case "STARTTLS":
		if len(arg) != 0 {
			return "501 5.5.4 Syntax: STARTTLS\r\n", carryOn
		}
		return "220 2.0.0 Ready to start TLS\r\n", upgrade
	case "NOOP", "RSET":
		return "250 2.0.0 OK\r\n", carryOn
	case "QUIT":
		return "221 2.0.0 Bye\r\n", quit
	case "":
		return "500 5.5.2 Empty command\r\n", carryOn
	}
	return "530 5.7.0 Must issue a STARTTLS command first\r\n", carryOn
}

// smtpServerLine accepts a 220 greeting, which may span lines ("220-").
func smtpServerLine(line []byte) (ok, last bool) {
	if !bytes.HasPrefix(line, []byte("220")) {
		return false, false
	}
	switch {
	case len(line) == 3 || line[3] == ' ':
		return true, true
	case line[3] == '-':
		return true, false
	}
	return false, false
}

// imapCaps is what nproxy's IMAP side can do: STARTTLS, and no login in
// clear (RFC 3501's LOGINDISABLED), so that a client not set up for
// STARTTLS does not send its password in clear. (curl 7.88 remembers
// LOGINDISABLED after TLS, and then logs in only with AUTHENTICATE, which
// real servers offer.)
const imapCaps = "IMAP4rev1 STARTTLS LOGINDISABLED"

// imapAnswer speaks RFC 3501's not-authenticated state before TLS.
func imapAnswer(line []byte) (string, verdict) {
	t, rest, _ := bytes.Cut(line, []byte(" "))
	if !imapTag(t) {
		return "* BAD Invalid tag\r\n", carryOn
	}
	tag := string(t)
	cmd, arg := verb(rest)
	switch cmd {
	case "CAPABILITY":
		return "* CAPABILITY " + imapCaps + "\r\n" + tag + " OK CAPABILITY completed\r\n", carryOn
	case "NOOP":
		return tag + " OK NOOP completed\r\n", carryOn
	case "LOGOUT":
		return "* BYE Logging out\r\n" + tag + " OK LOGOUT completed\r\n", quit
	case "STARTTLS":
		if len(arg) != 0 {
			return tag + " BAD STARTTLS takes no arguments\r\n", carryOn
		}
		return tag + " OK Begin TLS negotiation now\r\n", upgrade
	case "":
		return tag + " BAD Missing command\r\n", carryOn
	}
	return tag + " NO Must issue STARTTLS first\r\n", carryOn
}

// imapTag reports whether t is an IMAP tag: printable ASCII without the
// atom-specials and "+". Echoing anything else back could break the reply.
func imapTag(t []byte) bool {
	if len(t) == 0 {
		return false
	}
	for _, b := range t {
		if b <= ' ' || b >= 0x7f || strings.IndexByte(`(){%*"\+`, b) >= 0 {
			return false
		}
	}
	return true
}

// pop3Answer speaks RFC 2595's AUTHORIZATION state before TLS.
func pop3Answer(line []byte) (string, verdict) {
	cmd, arg := verb(line)
	switch cmd {
	case "CAPA":
		return "+OK Capability list follows\r\nSTLS\r\n.\r\n", carryOn
	case "STLS":
		if len(arg) != 0 {
			return "-ERR STLS takes no arguments\r\n", carryOn
		}
		return "+OK Begin TLS negotiation\r\n", upgrade
	case "QUIT":
		return "+OK Bye\r\n", quit
	}
	return "-ERR Must issue STLS first\r\n", carryOn
}

// prefixLine accepts a one-line greeting that starts with p as a word.
func prefixLine(p string) func([]byte) (bool, bool) {
	return func(line []byte) (bool, bool) {
		rest, ok := bytes.CutPrefix(line, []byte(p))
		ok = ok && (len(rest) == 0 || rest[0] == ' ')
		return ok, ok
	}
}
