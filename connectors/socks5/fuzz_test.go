package socks5

import "testing"

// FuzzServerMessages: the server's parsers never panic, and never claim
// more bytes than they were given.
func FuzzServerMessages(f *testing.F) {
	f.Add([]byte{5, 2, 0, 2})
	f.Add([]byte{1, 3, 'b', 'o', 'b', 2, 'p', 'w'})
	f.Add([]byte{5, 1, 0, 3, 9, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', 0, 80})
	f.Add([]byte{5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 187})
	f.Add([]byte{5, 0, 0, 1, 127, 0, 0, 1, 4, 56})
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, n, _ := parseGreeting(data); n > len(data) {
			t.Fatal("greeting overruns")
		}
		if _, _, n, _ := parseAuth(data); n > len(data) {
			t.Fatal("auth overruns")
		}
		if _, n, _ := parseRequest(data); n > len(data) {
			t.Fatal("request overruns")
		}
		if _, n, _ := parseReply(data); n > len(data) {
			t.Fatal("reply overruns")
		}
	})
}
