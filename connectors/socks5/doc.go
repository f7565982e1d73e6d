// Package socks5 is nproxy's SOCKS5 connector (RFC 1928, with RFC 1929
// username/password). The in side is a SOCKS5 server: clients name their
// destination and the proxy's out connector takes them there — a tcp out
// without host connects to it, a socks5 or connect out asks an upstream
// proxy for it. The out side reaches a server through an upstream SOCKS5
// server.
//
//	users := map[string]any{"alice": "s3cret"}
//	p := nproxy.New(&socks5.In{Port: 1080, Control: access.Control{Users: users, Allow: []string{"*:80", "*:443"}}}, &tcp.Out{})
//
// On the command line:
//
//	nproxy --in type=socks5,port=1080,users.alice=s3cret,allow='*:80;*:443' --out type=tcp
//	curl --socks5-hostname alice:s3cret@127.0.0.1:1080 http://example.org/
//
//	nproxy --in type=tcp,port=2222 --out type=socks5,host=ssh.example.org,port=22,proxy_host=socks.lan
//
// The negotiation runs on the loop within Timeout and a few hundred bytes
// (connectors.Preamble); names are resolved off the loop by the out
// connector; the client hears the outcome (connectors.Answerer) before the
// relay starts. UDP ASSOCIATE opens a UDP relay socket per association on
// the loop; each datagram's destination passes the same allow rules, and the
// association ends with its TCP connection or after UDPTimeout idle
// (UDPStats counts its datagrams and drops). docs/socks5.md is the spec.
package socks5
