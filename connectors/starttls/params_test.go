package starttls

import (
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/ssl/ssltest"
)

// The registry builds the connector from Net::Proxy-style parameters, and
// refuses what cannot work, naming the key.
func TestBuildIn(t *testing.T) {
	certs := ssltest.New(t)
	params := func(extra ...string) map[string]any {
		p := map[string]any{"type": "starttls", "port": "2525", "protocol": "imap",
			"SSL_cert_file": certs.ServerCert, "SSL_key_file": certs.ServerKey}
		for i := 0; i < len(extra); i += 2 {
			if extra[i+1] == "" {
				delete(p, extra[i])
			} else {
				p[extra[i]] = extra[i+1]
			}
		}
		return p
	}
	c, err := connectors.BuildIn("in", params("timeout", "2.5", "SSL_version", "TLSv1_3"))
	if err != nil {
		t.Fatal(err)
	}
	in := c.(*In)
	if in.Port != 2525 || in.Protocol != "imap" || in.Timeout != 2500*time.Millisecond || in.cfg == nil {
		t.Fatalf("built %+v", in)
	}
	for _, bad := range []struct {
		params map[string]any
		want   string
	}{
		{params("protocol", "ftp"), `protocol must be smtp, imap or pop3, not "ftp"`},
		{params("protocol", ""), "protocol parameter is required"},
		{params("SSL_key_file", ""), "SSL_"},
		{params("SSL_cert_file", certs.Dir+"/missing.pem"), "missing.pem"},
		{params("timeout", "soon"), "timeout expects a number of seconds"},
		{params("start_cleartext", "1"), "unknown parameter 'start_cleartext'"},
	} {
		if _, err := connectors.BuildIn("in", bad.params); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: got %v, want %q", bad.params, err, bad.want)
		}
	}
	if _, err := connectors.BuildOut("out", map[string]any{"type": "starttls", "host": "localhost", "port": "25"}); err == nil {
		t.Error("starttls was built as an out connector")
	}
}

// The answers of each dialect to the commands it knows and to others.
func TestAnswers(t *testing.T) {
	for _, tc := range []struct {
		proto, line, reply string
		v                  verdict
	}{
		{"smtp", "ehlo client.example", "250-" + hostname() + "\r\n250 STARTTLS\r\n", carryOn},
		{"smtp", "EHLO", "501 5.5.4 EHLO needs a domain\r\n", carryOn},
		{"smtp", "HELO client", "250 " + hostname() + "\r\n", carryOn},
		{"smtp", "starttls", "220 2.0.0 Ready to start TLS\r\n", upgrade},
		{"smtp", "STARTTLS now", "501 5.5.4 Syntax: STARTTLS\r\n", carryOn},
		{"smtp", "MAIL FROM:<a@b>", "530 5.7.0 Must issue a STARTTLS command first\r\n", carryOn},
		{"smtp", "", "500 5.5.2 Empty command\r\n", carryOn},
		{"smtp", "quit", "221 2.0.0 Bye\r\n", quit},
		{"imap", ". capability", "* CAPABILITY " + imapCaps + "\r\n. OK CAPABILITY completed\r\n", carryOn},
		{"imap", "a1 STARTTLS", "a1 OK Begin TLS negotiation now\r\n", upgrade},
		{"imap", "a1 STARTTLS x", "a1 BAD STARTTLS takes no arguments\r\n", carryOn},
		{"imap", "a1 LOGIN u p", "a1 NO Must issue STARTTLS first\r\n", carryOn},
		{"imap", "a1", "a1 BAD Missing command\r\n", carryOn},
		{"imap", "a+1 STARTTLS", "* BAD Invalid tag\r\n", carryOn},
		{"imap", "STARTTLS", "STARTTLS BAD Missing command\r\n", carryOn},
		{"imap", "z LOGOUT", "* BYE Logging out\r\nz OK LOGOUT completed\r\n", quit},
		{"pop3", "capa", "+OK Capability list follows\r\nSTLS\r\n.\r\n", carryOn},
		{"pop3", "STLS", "+OK Begin TLS negotiation\r\n", upgrade},
		{"pop3", "USER me", "-ERR Must issue STLS first\r\n", carryOn},
		{"pop3", "QUIT", "+OK Bye\r\n", quit},
	} {
		reply, v := dialects[tc.proto].answer([]byte(tc.line))
		if reply != tc.reply || v != tc.v {
			t.Errorf("%s %q: %q %d, want %q %d", tc.proto, tc.line, reply, v, tc.reply, tc.v)
		}
	}
}
