// Package ssl is Net::Proxy's ssl connector (In, Out, registered as type
// "ssl"): TLS on either side of a proxy, run by the memory-BIO engine of
// package tlsengine so that no handshake or decryption delays the loop.
//
//	p := nproxy.New(
//		&ssl.In{Port: 443, Params: ssl.Params{CertFile: "cert.pem", KeyFile: "key.pem"}},
//		&tcp.Out{Host: "127.0.0.1", Port: 8080},
//	)
//
// The package also holds Upgrade for hooks that switch a socket to TLS
// (STARTTLS), and Handshake for connectors that run TLS over a tunnel of
// their own; its TLS options take IO::Socket::SSL's names (see Params).
package ssl
