package starttls

import (
	"bytes"
	"fmt"
	"github.com/nproxy/nproxy/nproxytest"
	"os/exec"
	"strings"
	"testing"
)

// answerer is a tiny plain server of one protocol, behind the proxy: it
// answers one line, and says when to hang up.
type answerer func(line string) (reply string, bye bool)

// serve greets, then answers the lines of one connection.
func serve(t *testing.T, be *end, greet string, answer answerer) {
	t.Helper()
	be.send(t, greet)
	for {
		line, err := be.R.ReadString('\n')
		if err != nil {
			t.Errorf("the backend read %q, %v", line, err)
			return
		}
		reply, bye := answer(strings.TrimRight(line, "\r\n"))
		be.send(t, reply)
		if bye {
			return
		}
	}
}

// smtpBackend takes one message and keeps it in *msg.
func smtpBackend(msg *strings.Builder) answerer {
	inData := false
	return func(line string) (string, bool) {
		if inData {
			if line == "." {
				inData = false
				return "250 2.0.0 queued\r\n", false
			}
			msg.WriteString(line + "\n")
			return "", false
		}
		cmd, _, _ := strings.Cut(strings.ToUpper(line), " ")
		switch cmd {
		case "EHLO":
			return "250-backend\r\n250 8BITMIME\r\n", false
		case "DATA":
			inData = true
			return "354 go ahead\r\n", false
		case "QUIT":
			return "221 bye\r\n", true
		}
		return "250 OK\r\n", false
	}
}

// imapBackend logs in and lists one mailbox. It offers AUTH=PLAIN, as
// real servers do after TLS: curl remembers the LOGINDISABLED nproxy
// announced before TLS, and would not try LOGIN.
func imapBackend(line string) (string, bool) {
	tag, rest, _ := strings.Cut(line, " ")
	cmd, _, _ := strings.Cut(strings.ToUpper(rest), " ")
	switch cmd {
	case "CAPABILITY":
		return "* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\n" + tag + " OK done\r\n", false
	case "LIST":
		return "* LIST () \"/\" Secret-Box\r\n" + tag + " OK done\r\n", false
	case "LOGOUT":
		return "* BYE\r\n" + tag + " OK done\r\n", true
	}
	return tag + " OK done\r\n", false
}

// pop3Backend logs in and lists one message.
func pop3Backend(line string) (string, bool) {
	cmd, _, _ := strings.Cut(strings.ToUpper(line), " ")
	switch cmd {
	case "CAPA":
		return "+OK\r\nUSER\r\n.\r\n", false
	case "LIST":
		return "+OK 1 message\r\n1 4242\r\n.\r\n", false
	case "QUIT":
		return "+OK bye\r\n", true
	}
	return "+OK\r\n", false
}

// curl, a real mail client, through a starttls in with --ssl-reqd: it
// sends a message by SMTP, lists mailboxes by IMAP and messages by POP3,
// its second capability request (after TLS) answered by the backend.
func TestCurl(t *testing.T) {
	curl := nproxytest.Command(t, "curl")
	var msg strings.Builder
	for _, tc := range []struct {
		proto  string
		answer answerer
		args   []string
		want   string
	}{
		{"smtp", smtpBackend(&msg), []string{"--mail-from", "a@example.org", "--mail-rcpt", "b@example.org", "-T", "-"}, ""},
		{"imap", imapBackend, []string{"-u", "user:secret"}, "* LIST () \"/\" Secret-Box\r\n"},
		{"pop3", pop3Backend, []string{"-u", "user:secret"}, "1 4242\r\n"},
	} {
		t.Run(tc.proto, func(t *testing.T) {
			s := start(t, tc.proto, 0)
			args := append([]string{"-sS", "--max-time", "10", "--ssl-reqd", "--cacert", s.certs.CA,
				fmt.Sprintf("%s://%s/", tc.proto, s.addr)}, tc.args...)
			cmd := exec.Command(curl, args...)
			cmd.Stdin = strings.NewReader("Subject: hello\r\n\r\nthrough nproxy\r\n")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill() })
			be := s.backend(t)
			serve(t, be, backendTalk[tc.proto].greet, tc.answer)
			if err := cmd.Wait(); err != nil || out.String() != tc.want {
				t.Fatalf("curl %s: %v, printed %q, want %q", strings.Join(args, " "), err, out.String(), tc.want)
			}
			s.noLeak(t, be)
		})
	}
	if want := "Subject: hello\n\nthrough nproxy\n"; msg.String() != want {
		t.Errorf("the SMTP backend got %q, want %q", msg.String(), want)
	}
}
