package dnstunnel

import (
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/nproxytest"
)

// exchange sends b to the server at port and returns its answer, or nil
// when none comes within a short while (a dropped message).
func exchange(t *testing.T, port int, b []byte) *dns.Msg {
	c, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(b)
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, maxMessage)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf[:n]); err != nil {
		t.Fatalf("the server's answer does not unpack: %v", err)
	}
	return m
}

func queryMsg(t *testing.T, key string, q *query) []byte {
	m := newQueryMsg(encodeQuery([]byte(key), dns.Fqdn(testDomain), q))
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Garbage, forgeries, replays, floods and unknown sessions reach the
// server: each is dropped or refused, and counted.
func TestServerBadInput(t *testing.T) {
	nproxytest.CaptureLog(t, 0)
	port := nproxytest.FreePort(t)
	in := &In{Host: "127.0.0.1", Port: port, Domain: testDomain, Key: testKey, MaxSessions: 2}
	nproxytest.Serve(t, nproxy.New(in, &tcp.Out{Host: "127.0.0.1", Port: nproxytest.EchoServer(t)}))
	now := uint32(time.Now().Unix())
	expect := func(what string, c *atomic.Uint64, want uint64) {
		for deadline := time.Now().Add(3 * time.Second); c.Load() != want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s = %d, want %d", what, c.Load(), want)
			}
		}
	}
	// The server may not be listening yet: a name outside the domain is
	// asked until REFUSED comes back.
	other := new(dns.Msg)
	other.SetQuestion("www.example.org.", dns.TypeA)
	b, _ := other.Pack()
	for deadline := time.Now().Add(3 * time.Second); ; {
		if m := exchange(t, port, b); m != nil {
			if m.Rcode != dns.RcodeRefused {
				t.Fatalf("a name outside the domain got rcode %d, want REFUSED", m.Rcode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no answer from the server")
		}
	}

	if exchange(t, port, []byte("\x00\x01garbage")) != nil {
		t.Error("garbage was answered")
	}
	expect("Malformed", &in.Stats.Malformed, 1)

	if exchange(t, port, queryMsg(t, "wrong key", &query{kind: kindStart, session: 1, time: now})) != nil {
		t.Error("a query with the wrong key was answered")
	}
	expect("BadMAC", &in.Stats.BadMAC, 1)

	if exchange(t, port, queryMsg(t, testKey, &query{kind: kindStart, session: 2, time: now - 3600})) != nil {
		t.Error("a start an hour old was answered")
	}
	expect("Refused", &in.Stats.Refused, 1)

	m := exchange(t, port, queryMsg(t, testKey, &query{kind: kindData, session: 3, time: now, data: []byte("hi")}))
	if m == nil || len(m.Answer) != 1 {
		t.Fatalf("data for an unknown session: answer %v, want a RESET", m)
	}
	q := query{kind: kindData, session: 3, time: now, data: []byte("hi")}
	encodeQuery([]byte(testKey), dns.Fqdn(testDomain), &q)
	if a, err := decodeAnswer([]byte(testKey), &q, m.Answer[0].(*dns.TXT).Txt); err != nil || a.flags&flagReset == 0 {
		t.Fatalf("data for an unknown session: %+v, %v; want RESET", a, err)
	}
	expect("Unknown", &in.Stats.Unknown, 1)

	for id := uint32(100); id < 110; id++ {
		exchange(t, port, queryMsg(t, testKey, &query{kind: kindStart, session: id, time: now}))
	}
	expect("Refused", &in.Stats.Refused, 1+10-uint64(in.MaxSessions))
}

// FuzzDecodeQuery feeds the server's name decoder arbitrary names, and the
// client's answer decoder arbitrary TXT strings.
func FuzzDecodeQuery(f *testing.F) {
	key := []byte(testKey)
	domain := dns.Fqdn(testDomain)
	q := query{kind: kindData, session: 7, up: 100, down: 200, max: 900, data: []byte("some data")}
	f.Add(encodeQuery(key, domain, &q), "\x00\x00\x00")
	f.Add("A.B.C."+domain, `\001\\x`)
	f.Fuzz(func(t *testing.T, name, txt string) {
		if got, err := decodeQuery(key, domain, name); err == nil {
			again, err := decodeQuery(key, domain, encodeQuery(key, domain, &got))
			if err != nil || again.session != got.session || string(again.data) != string(got.data) {
				t.Fatalf("re-encoding %q failed: %v", name, err)
			}
		}
		decodeAnswer(key, &q, []string{txt})
		if got := unescapeTXT(nil, escapeTXT([]byte(txt))); string(got) != txt {
			t.Fatalf("TXT escaping changed %q into %q", txt, got)
		}
	})
}

// A resolver that answers with garbage, a wrong DNS id and a forged TXT:
// the client drops and counts each, and keeps waiting for the real answer.
func TestClientBadAnswers(t *testing.T) {
	nproxytest.CaptureLog(t, 0)
	fake, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	go func() {
		buf := make([]byte, maxMessage)
		for {
			n, from, err := fake.ReadFromUDP(buf)
			if err != nil {
				return
			}
			m := new(dns.Msg)
			if m.Unpack(buf[:n]) != nil {
				continue
			}
			fake.WriteToUDP([]byte("garbage"), from)
			wrongID := new(dns.Msg)
			wrongID.SetReply(m)
			wrongID.Id++
			b, _ := wrongID.Pack()
			fake.WriteToUDP(b, from)
			forged := new(dns.Msg)
			forged.SetReply(m)
			forged.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: m.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET},
				Txt: []string{"0123456789abcdefghijklmnop"}}}
			b, _ = forged.Pack()
			fake.WriteToUDP(b, from)
		}
	}()
	port := nproxytest.FreePort(t)
	out := &Out{Domain: testDomain, Key: testKey, Resolver: fake.LocalAddr().String()}
	nproxytest.Serve(t, nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port}, out))
	nproxytest.WaitListening(t, port)
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for deadline := time.Now().Add(5 * time.Second); out.Stats.Malformed.Load() == 0 || out.Stats.Unknown.Load() == 0 || out.Stats.BadMAC.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("malformed %d, unknown %d, bad MAC %d: want each counted", out.Stats.Malformed.Load(), out.Stats.Unknown.Load(), out.Stats.BadMAC.Load())
		}
	}
}
