// Package udp is the udp connector, on Net::Proxy's wishlist ("Implement an
// UDP connector"): it relays datagrams by keeping one flow per client
// address, as socat, sslh and realm do. A DNS relay in front of a resolver:
//
//	p := nproxy.New(
//		&udp.In{Host: "*", Port: 53, Timeout: 10 * time.Second},
//		&udp.Out{Host: "192.0.2.53", Port: 53},
//	)
//
// On the command line: --in type=udp,host=*,port=53,timeout=10 --out
// type=udp,host=192.0.2.53,port=53.
//
// # Flows are connections
//
// The in connector reads every client's datagrams from one listening socket
// (host "*" means IPv4 and IPv6). The first datagram from a new address
// (IP and port) opens a flow, which the proxy sees as an accepted
// connection: Handler.Accepted counts it (Proxy.Opened, Mainloop(max)) and
// the proxy's out connector opens the server for it; Connected starts the
// relay and Failed logs why the flow could not be served and ends it. A flow
// ends, and counts as a closed connection, when it has been idle for
// Timeout (a sweep every Timeout/4 finds it), when it is evicted because MaxFlows are open (the least recently
// used goes), or when the server's host answers with an ICMP port
// unreachable. Replies go back to the client from the listening socket.
//
// The out connector opens one connected UDP socket per flow, so the server
// sees one source port per client, and a client sees only its own replies.
// A udp in connector needs an out connector that carries datagrams (udp
// out, or a tunnel's datagram socket): the loop refuses to relay a flow to
// a stream, where its boundaries would be lost, and logs why.
//
// # Datagrams
//
// One datagram read is one datagram written: never merged, never split. A
// hook sees one datagram per call, and drops it by returning nothing. What a
// socket cannot take now is queued, up to a bound, then dropped (counted in
// Stats.Dropped), as the network would; a datagram longer than MaxDatagram
// is dropped too. The wire behaviour and limits are in docs/udp.md.
//
// Its type name is "udp". The datagram layer itself (Virtual sockets,
// DialDatagram, DatagramBatch) is in package loop, for other connectors that
// carry datagrams.
package udp
