package dnstunnel

import (
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// randomCase changes the case of about half the letters of name, as a
// resolver with 0x20 randomisation does.
func randomCase(name string) string {
	b := []byte(name)
	for i, c := range b {
		if rand.Intn(2) == 0 {
			if 'a' <= c && c <= 'z' {
				b[i] = c - 'a' + 'A'
			} else if 'A' <= c && c <= 'Z' {
				b[i] = c - 'A' + 'a'
			}
		}
	}
	return string(b)
}

// Queries whose letters a resolver re-cased (0x20) open a session and carry
// data; the answer echoes the question as asked.
func TestCaseRandomised(t *testing.T) {
	nproxytest.CaptureLog(t, 0)
	port := nproxytest.FreePort(t)
	in := &In{Host: "127.0.0.1", Port: port, Domain: testDomain, Key: testKey}
	nproxytest.Serve(t, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: nproxytest.EchoServer(t)}))
	ask := func(q *query) answer {
		name := randomCase(encodeQuery([]byte(testKey), dns.Fqdn(testDomain), q))
		b, _ := newQueryMsg(name).Pack()
		var m *dns.Msg
		for deadline := time.Now().Add(3 * time.Second); m == nil; {
			if m = exchange(t, port, b); m == nil && time.Now().After(deadline) {
				t.Fatal("no answer")
			}
		}
		if len(m.Answer) != 1 || m.Question[0].Name != name || !strings.EqualFold(m.Answer[0].Header().Name, name) {
			t.Fatalf("answer %v to %q", m, name)
		}
		a, err := decodeAnswer([]byte(testKey), q, m.Answer[0].(*dns.TXT).Txt)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	now := uint32(time.Now().Unix())
	ask(&query{kind: kindStart, session: 42, time: now})
	if a := ask(&query{kind: kindData, session: 42, time: now, max: 100, data: []byte("Hello, 0x20!")}); a.up != 12 {
		t.Fatalf("the server took %d bytes of 12", a.up)
	}
	var got []byte
	for deadline := time.Now().Add(3 * time.Second); len(got) < 12; {
		a := ask(&query{kind: kindData, session: 42, up: 12, down: uint32(len(got)), time: now, max: 100})
		got = append(got, a.data...)
		if time.Now().After(deadline) {
			t.Fatalf("echo %q so far", got)
		}
	}
	if string(got) != "Hello, 0x20!" {
		t.Fatalf("echo %q", got)
	}
}
