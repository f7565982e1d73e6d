// Package connect speaks HTTP CONNECT to a web proxy: it builds the
// request and reads the reply incrementally, so that an event loop never
// waits for a slow proxy.
//
//	req := connect.Request{Host: "ssh.example.com", Port: 443, Agent: "nproxy"}
//	conn.Write(req.AppendTo(nil))
//	p := connect.NewReplyParser(0)
//	for r := p.Feed(chunk); r.Verdict == connect.NeedMore; r = p.Feed(chunk) {
//		chunk = readMore()
//	}
//
// When the verdict is Open, chunk[r.Offset:] already belongs to the tunnel.
package connect
