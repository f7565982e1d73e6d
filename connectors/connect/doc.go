// Package connect is Net::Proxy's connect connector: it reaches a server
// through a web proxy's HTTP CONNECT method, without ever blocking the loop;
// and, on the in side, it is such a web proxy.
//
//	p := nproxy.New(&tcp.In{Port: 2222}, &connect.Out{
//		Host: "ssh.example.com", Port: 443,
//		ProxyHost: "proxy.company.com", ProxyPort: 8080,
//		ProxyUser: "book", ProxyPass: "s3kr3t",
//		ProxyAgent: "Mozilla/4.04 (X11; I; SunOS 5.4 sun4m)",
//	})
//	p.Register()
//	nproxy.Mainloop(0)
//
// Its type name is "connect", with Net::Proxy's parameters plus timeout
// and header_limit:
//
//	nproxy --in type=tcp,port=2222 --out type=connect,host=ssh.example.com,port=443,proxy_host=proxy.company.com
//
// Without proxy_host, the proxy comes from HTTP_PROXY (or http_proxy).
//
// For each client, Out connects to the web proxy, sends the request, and
// reads the reply as it arrives, all on the loop and within one deadline
// (Timeout, 10 s by default) that a proxy trickling its reply cannot
// extend. Bytes that came after the reply's headers are the server's: the
// client gets them first. Once the tunnel is open, both sides are plain
// TCP and the relay splices them. A refusal or a malformed reply is logged
// in one line naming the target, the web proxy and the status line or what
// was wrong, and the client is closed.
//
// The in side, In, is nproxy as a CONNECT-only web proxy (Basic auth,
// allow rules, 405 for other methods): the destination each client asks
// for goes on its socket for the proxy's out connector (a tcp out without
// host connects there; an Out without host asks its own web proxy for it).
// docs/connect-in.md is its spec.
//
// Request and ReplyParser are the two halves of the exchange, usable
// alone; package connecttest runs the peers the tests need (tinyproxy, a
// scripted proxy, a server that speaks first).
package connect
