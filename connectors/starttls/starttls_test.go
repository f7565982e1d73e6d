package starttls

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/loop"
	"github.com/nproxy/nproxy/nproxytest"
)

// readLine reads one line of an openssl's output, at most for 5 s.
func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		line, _ := r.ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		return line
	case <-time.After(5 * time.Second):
		t.Fatal("openssl printed nothing for 5 s")
		return ""
	}
}

// backendTalk is one protocol's exchange with the backend after TLS.
var backendTalk = map[string]struct{ greet, cmd, reply string }{
	"smtp": {"220 backend ESMTP\r\n", "EHLO again", "250 backend\r\n"},
	"imap": {"* OK backend ready\r\n", "a1 LOGIN user pass", "a1 OK LOGIN completed\r\n"},
	"pop3": {"+OK backend ready\r\n", "USER someone", "+OK\r\n"},
}

// openssl s_client -starttls smtp|imap|pop3 through a starttls in to a
// plain backend: the backend's greeting is dropped (the client's first
// line of output is the answer to its command), and lines go both ways.
func TestOpenSSLClient(t *testing.T) {
	for _, proto := range []string{"smtp", "imap", "pop3"} {
		t.Run(proto, func(t *testing.T) {
			talk := backendTalk[proto]
			s := start(t, proto, 0)
			_, stdin, stdout := ssltest.OpenSSL(t, "s_client", "-connect", s.addr, "-starttls", proto,
				"-CAfile", s.certs.CA, "-verify_return_error", "-verify_hostname", "localhost",
				"-quiet", "-no_ign_eof", "-crlf")
			be := s.backend(t)
			be.send(t, talk.greet)
			io.WriteString(stdin, talk.cmd+"\n")
			be.Expect(t, talk.cmd+"\r\n")
			be.send(t, talk.reply)
			if line := readLine(t, stdout); line != talk.reply {
				t.Fatalf("s_client read %q, want %q", line, talk.reply)
			}
			be.send(t, "from the server\r\n")
			if line := readLine(t, stdout); line != "from the server\r\n" {
				t.Fatalf("s_client read %q", line)
			}
			io.WriteString(stdin, "from the client\n")
			be.Expect(t, "from the client\r\n")
			stdin.Close()
			be.expectEOF(t)
			s.logs.WaitFor(t, "connection from")
			s.noLeak(t, be)
		})
	}
}

// script is a client's clear-text conversation in one protocol: the
// greeting, a capability command and its answer, STARTTLS and its answer.
type script struct {
	greeting      string
	caps          string
	capsAnswer    []string
	starttls, ok  string
	refused, quit string
}

var scripts = map[string]script{
	"smtp": {"220 " + hostname() + " ESMTP nproxy\r\n", "EHLO me\r\n",
		[]string{"250-" + hostname() + "\r\n", "250 STARTTLS\r\n"},
		"STARTTLS\r\n", "220 2.0.0 Ready to start TLS\r\n",
		"530 5.7.0 Must issue a STARTTLS command first\r\n", "QUIT\r\n"},
	"imap": {"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] nproxy ready\r\n", "a CAPABILITY\r\n",
		[]string{"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n", "a OK CAPABILITY completed\r\n"},
		"b STARTTLS\r\n", "b OK Begin TLS negotiation now\r\n",
		"c NO Must issue STARTTLS first\r\n", "d LOGOUT\r\n"},
	"pop3": {"+OK nproxy POP3 ready\r\n", "CAPA\r\n",
		[]string{"+OK Capability list follows\r\n", "STLS\r\n", ".\r\n"},
		"STLS\r\n", "+OK Begin TLS negotiation\r\n",
		"-ERR Must issue STLS first\r\n", "QUIT\r\n"},
}

// oneByOne writes every byte in a write of its own (TCP_NODELAY is Go's
// default, so each is a segment of its own).
type oneByOne struct {
	net.Conn
	pause time.Duration
}

func (o oneByOne) Write(p []byte) (int, error) {
	for i := range p {
		if _, err := o.Conn.Write(p[i : i+1]); err != nil {
			return i, err
		}
		time.Sleep(o.pause)
	}
	return len(p), nil
}

// A client that sends everything a byte at a time (the TLS handshake and
// records too, though without pauses).
func TestByteByByte(t *testing.T) {
	for _, proto := range []string{"smtp", "imap", "pop3"} {
		t.Run(proto, func(t *testing.T) {
			sc, talk := scripts[proto], backendTalk[proto]
			s := start(t, proto, 0)
			c := s.dial(t)
			raw := c.Conn
			c.Conn = oneByOne{raw, time.Millisecond}
			c.Expect(t, sc.greeting)
			c.send(t, sc.caps)
			for _, line := range sc.capsAnswer {
				c.Expect(t, line)
			}
			c.send(t, sc.starttls)
			c.Expect(t, sc.ok)
			c.Conn = oneByOne{raw, 0}
			tc := c.upgrade(t, s.certs)
			be := s.backend(t)
			be.send(t, talk.greet)
			tc.send(t, talk.cmd+"\r\n")
			be.Expect(t, talk.cmd+"\r\n")
			be.send(t, talk.reply)
			tc.Expect(t, talk.reply)
		})
	}
}

// prefixed sends prefix with the first write (the TLS ClientHello), and
// reads the clear answers to it before handing the rest to TLS.
type prefixed struct {
	*end
	t       *testing.T
	prefix  string
	answers []string
}

func (p *prefixed) Write(b []byte) (int, error) {
	if p.prefix != "" {
		all := p.prefix + string(b)
		p.prefix = ""
		_, err := p.end.Conn.Write([]byte(all))
		return len(b), err
	}
	return p.end.Conn.Write(b)
}

func (p *prefixed) Read(b []byte) (int, error) {
	for len(p.answers) > 0 {
		line, err := p.R.ReadString('\n')
		if line != p.answers[0] {
			p.t.Errorf("read %q (%v) before TLS, want %q", line, err, p.answers[0])
			return 0, io.ErrUnexpectedEOF
		}
		p.answers = p.answers[1:]
	}
	return p.R.Read(b)
}

// A client that pipelines its capability command, STARTTLS and its
// ClientHello in one write, and its first command right after the
// handshake: no byte is lost or read in clear, and the backend hears
// nothing before it greeted.
func TestPipelined(t *testing.T) {
	for _, proto := range []string{"smtp", "imap", "pop3"} {
		t.Run(proto, func(t *testing.T) {
			sc, talk := scripts[proto], backendTalk[proto]
			s := start(t, proto, 0)
			c := s.dial(t)
			c.Expect(t, sc.greeting)
			answers := append(append([]string{}, sc.capsAnswer...), sc.ok)
			p := &prefixed{end: c, t: t, prefix: sc.caps + sc.starttls, answers: answers}
			tc := (&end{&ssltest.Lines{Conn: p, R: bufio.NewReader(p)}}).upgrade(t, s.certs)
			tc.send(t, talk.cmd+"\r\n")
			be := s.backend(t)
			be.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			var one [1]byte
			if n, err := be.Conn.Read(one[:]); n > 0 || !nproxytest.IsTimeout(err) {
				t.Fatalf("the backend heard %q (%v) before it greeted", one[:n], err)
			}
			be.SetReadDeadline(time.Now().Add(5 * time.Second))
			be.send(t, talk.greet)
			be.Expect(t, talk.cmd+"\r\n")
			be.send(t, talk.reply)
			tc.Expect(t, talk.reply)
			tc.Close()
			be.expectEOF(t)
			s.noLeak(t, be, c)
		})
	}
}

// A client that never says STARTTLS, trickling bytes: the deadline is not
// extended, the client gets the protocol's closing line, and plain text
// after it goes nowhere.
func TestDeadline(t *testing.T) {
	s := start(t, "smtp", 500*time.Millisecond)
	c := s.dial(t)
	begin := time.Now()
	c.Expect(t, scripts["smtp"].greeting)
	go func() {
		for range 40 {
			if _, err := c.Write([]byte("N")); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	c.Expect(t, "421 4.4.2 Timeout waiting for STARTTLS, closing\r\n")
	c.expectEOF(t)
	// Had the trickle (4 s of it) extended the deadline, the close would
	// come after 4.5 s.
	if d := time.Since(begin); d < 450*time.Millisecond || d > 3*time.Second {
		t.Errorf("closed after %v, want 500ms", d)
	}
	c.Write([]byte("EHLO late\r\n"))
	c.expectEOF(t)
	s.logs.WaitFor(t, "no STARTTLS within 500ms, closing")
	s.noBackend(t)
	s.noLeak(t, c)
}

// A client that sends commands but never STARTTLS gets the protocol's
// error for each, then the closing line after maxCommands, even when it
// pipelines them all.
func TestNoSTARTTLS(t *testing.T) {
	for _, proto := range []string{"smtp", "imap", "pop3"} {
		t.Run(proto, func(t *testing.T) {
			sc, d := scripts[proto], dialects[proto]
			s := start(t, proto, 0)
			c := s.dial(t)
			c.Expect(t, sc.greeting)
			c.send(t, strings.Repeat("c LOGIN user secret\r\n", 2*maxCommands))
			for range maxCommands {
				c.Expect(t, sc.refused)
			}
			c.Expect(t, d.tooMany)
			c.expectEOF(t)
			s.logs.WaitFor(t, "10 commands without STARTTLS, closing")
			s.noBackend(t)
			s.noLeak(t, c)
		})
	}
}

// An overlong line gets the protocol's error and a close.
func TestLineTooLong(t *testing.T) {
	s := start(t, "imap", 0)
	c := s.dial(t)
	c.Expect(t, scripts["imap"].greeting)
	c.send(t, "a "+strings.Repeat("x", 3000)+"\r\n")
	c.Expect(t, "* BYE Line too long\r\n")
	c.expectEOF(t)
	s.logs.WaitFor(t, "command line longer than 1024 bytes")
}

// QUIT and LOGOUT are answered and close.
func TestQuit(t *testing.T) {
	for _, proto := range []string{"smtp", "imap", "pop3"} {
		t.Run(proto, func(t *testing.T) {
			sc := scripts[proto]
			s := start(t, proto, 0)
			c := s.dial(t)
			c.Expect(t, sc.greeting)
			c.send(t, sc.quit)
			line, _ := c.R.ReadString('\n')
			if !strings.HasPrefix(line, "221 ") && !strings.HasPrefix(line, "* BYE") && !strings.HasPrefix(line, "+OK") {
				t.Fatalf("read %q", line)
			}
			c.expectEOF(t)
			s.logs.WaitFor(t, "quit before STARTTLS")
		})
	}
}

// Plain text where the TLS handshake belongs fails the handshake: a log
// line, a close, and no server connection.
func TestPlainAfterSTARTTLS(t *testing.T) {
	s := start(t, "smtp", 0)
	c := s.dial(t)
	c.Expect(t, scripts["smtp"].greeting)
	c.send(t, "STARTTLS\r\nEHLO plain\r\n")
	c.Expect(t, "220 2.0.0 Ready to start TLS\r\n")
	c.expectEOF(t)
	s.logs.WaitFor(t, "TLS handshake")
	s.noBackend(t)
	s.noLeak(t, c)
}

// upgraded runs a client through STARTTLS and TLS.
func (s *setup) upgraded(t *testing.T, proto string) *end {
	t.Helper()
	sc := scripts[proto]
	c := s.dial(t)
	c.Expect(t, sc.greeting)
	c.send(t, sc.starttls)
	c.Expect(t, sc.ok)
	return c.upgrade(t, s.certs)
}

// A server that refuses in its greeting, does not greet, or closes before
// it greeted ends the connection with a log line; the client's command
// never reaches it.
func TestServerGreeting(t *testing.T) {
	s := start(t, "pop3", time.Second)
	tc := s.upgraded(t, "pop3")
	be := s.backend(t)
	be.send(t, "-ERR no service\r\n")
	tc.expectEOF(t)
	s.logs.WaitFor(t, `the server greeted with "-ERR no service"`)
	s.noLeak(t, tc, be)

	tc = s.upgraded(t, "pop3")
	tc.send(t, "USER someone\r\n")
	be = s.backend(t)
	if rest, err := io.ReadAll(be.R); len(rest) > 0 || err != nil {
		t.Fatalf("the backend read %q, %v", rest, err)
	}
	tc.expectEOF(t)
	s.logs.WaitFor(t, "the server sent no greeting in time")
	s.noLeak(t, tc, be)

	tc = s.upgraded(t, "pop3")
	s.backend(t).Close()
	tc.expectEOF(t)
	s.logs.WaitFor(t, "the server closed before its greeting ended")
	s.noLeak(t, tc)
}

// A client that resets the connection while the server has not greeted
// yet ends it at once: the hang-up is not left to repeat until the deadline.
func TestClientGoneBeforeGreeting(t *testing.T) {
	s := start(t, "imap", 0)
	tc := s.upgraded(t, "imap")
	be := s.backend(t)
	raw := tc.Conn.(*tls.Conn).NetConn().(interface{ NetConn() net.Conn }).NetConn().(*net.TCPConn)
	raw.SetLinger(0)
	raw.Close()
	be.SetReadDeadline(time.Now().Add(2 * time.Second))
	if rest, err := io.ReadAll(be.R); len(rest) > 0 || nproxytest.IsTimeout(err) {
		t.Fatalf("the backend read %q, %v", rest, err)
	}
	s.noLeak(t, be)
}

// Clients in every phase at once, one of them stalled mid-line: none waits
// for another, and each reaches its own backend connection.
func TestManyClients(t *testing.T) {
	const clients = 20
	s := start(t, "smtp", 0)
	stalled := s.dial(t)
	stalled.Expect(t, scripts["smtp"].greeting)
	stalled.send(t, "EHL")
	go func() { // a backend that greets, then answers one line with it
		for {
			c, err := s.be.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				e := newEnd(c)
				io.WriteString(e, "220 backend\r\n")
				line, _ := e.R.ReadString('\n')
				io.WriteString(e, "250 "+line)
				io.ReadAll(e.R)
			}()
		}
	}()
	s.be.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	errs := make(chan error, clients)
	for i := range clients {
		go func() { errs <- s.converse(i) }()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	s.noLeak(t, stalled)
}

// converse goes through STARTTLS and TLS, and checks one line relayed.
func (s *setup) converse(i int) error {
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "EHLO client%d\r\nSTARTTLS\r\n", i)
	for range 4 { // greeting, two EHLO lines, STARTTLS's answer
		if _, err := r.ReadString('\n'); err != nil {
			return err
		}
	}
	tc := tls.Client(ssltest.Buffered(c, r), s.tlsConfig)
	fmt.Fprintf(tc, "EHLO %d\r\n", i)
	line, err := bufio.NewReader(tc).ReadString('\n')
	if want := fmt.Sprintf("250 EHLO %d\r\n", i); line != want {
		return fmt.Errorf("client %d read %q, %v", i, line, err)
	}
	return nil
}

// The in's hook sees the client's plaintext once, the bytes held back
// until the server greeted too.
func TestHook(t *testing.T) {
	mark := func(data []byte, _ *loop.Socket) []byte {
		return bytes.ReplaceAll(data, []byte("\r\n"), []byte("+\r\n"))
	}
	s := start(t, "smtp", 0, mark)
	tc := s.upgraded(t, "smtp")
	tc.send(t, "EHLO held\r\n")
	be := s.backend(t)
	time.Sleep(50 * time.Millisecond) // the command is held, if not stashed
	be.send(t, backendTalk["smtp"].greet)
	be.Expect(t, "EHLO held+\r\n")
	tc.send(t, "EHLO later\r\n")
	be.Expect(t, "EHLO later+\r\n")
	s.noLeak(t, tc, be)
}
