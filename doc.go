// Package nproxy is Net::Proxy for Go: a proxy is an in connector and an out
// connector, and event loops relay every connection of every registered
// proxy, splicing plain TCP without copying it.
//
//	p := nproxy.New(
//		&tcp.In{Port: 6789},
//		&tcp.Out{Host: "remotehost", Port: 9876},
//	)
//	p.Register()
//	nproxy.Mainloop(0) // relay until a signal
//
// As in Net::Proxy, Mainloop(max) returns after max connections were fully
// processed, and each proxy counts its opened and closed connections. Unlike
// Net::Proxy, nothing blocks the loop: connects, CONNECT requests, the dual
// decision and TLS handshakes are all state machines on it.
//
// A program that embeds several relays gives each a Server of its own, with
// its own proxies, options, log and counters; the package-level functions
// work on DefaultServer, as net/http's do on DefaultServeMux:
//
//	srv := &nproxy.Server{}
//	srv.SetVerbosity(1)
//	srv.SetLogOutput(logFile)
//	srv.Register(p)
//	err := srv.Serve(ctx) // until ctx is done or srv.Stop()
//
// # Log lines
//
// A Server logs Net::Proxy's lines at its levels (SetVerbosity: 0 errors, 1
// notices, 2 info, 3 debug): at notice "Add listener 127.0.0.1:6789", "New
// connection on listener 127.0.0.1:6789", "Accepted 127.0.0.1:40000 ->
// 127.0.0.1:6789", "Connected 127.0.0.1:40001 -> 10.0.0.2:9876", "Peered
// 127.0.0.1:40000 with 10.0.0.2:9876", "Closing 127.0.0.1:40000", "Closing
// listener 127.0.0.1:6789", and one access line per finished connection:
//
//	2026-01-02 15:04:05 access proxy=#1 client=127.0.0.1:40000 target=10.0.0.2:9876 in=512 out=20480 duration=1.2s end=eof
//
// where end is eof, "client reset", "server reset", timeout, refused, error
// or closed. SetLogFormat(LogJSON) writes the same records as JSON objects.
// SetAccessLog sends the access lines alone to a writer of their own,
// whatever the verbosity, at a fraction of the cost of notice.
// Package metrics serves a Server's counters to Prometheus.
//
// # Net::Proxy's methods in Go
//
//	Net::Proxy                       nproxy
//	new({in => ..., out => ...})     New(in, out); connectors.BuildIn/BuildOut make in and out from the same hashes
//	register, unregister             Proxy.Register, Proxy.Unregister (DefaultServer); Server.Register, Server.Unregister
//	mainloop($max)                   Mainloop(max), Server.Mainloop(max); Server.Serve(ctx) for programs that handle signals
//	in_connector, out_connector      Proxy.In, Proxy.Out
//	set_verbosity($level)            SetVerbosity, Server.SetVerbosity
//	error, notice, info, debug       Logger().Error, .Log(ctx, LevelNotice, ...), .Info, .Debug (log/slog); loop.Loop.Logger on the loop
//	add_listeners(@sockets)          none: loop.Loop.Listen adds the listener it opens (connectors.Listen for connectors), and logs "Add listener"
//	watch_reader_sockets(@sockets)   loop.Loop.WatchReader (and UnwatchReader, which Net::Proxy lacks)
//	watch_writer_sockets(@sockets)   loop.Loop.WatchWriter
//	remove_writer_sockets(@sockets)  loop.Loop.UnwatchWriter
//	close_sockets(@sockets)          loop.Loop.Close; the relay writes pending data first, as the closing list did; loop.Loop.Abort resets
//	get_peer, set_peer               loop.Socket.Peer, set by loop.Loop.Relay for both sockets at once
//	get_connector, set_connector     loop.Socket.Connector
//	get_state, set_state             loop.Socket.State
//	get_nick, set_nick               loop.Socket.Nick, loop.Socket.SetNick (made lazily: formatting every accept costs connections/s)
//	get_buffer                       loop.Socket.Pending gives its size; the bytes are the loop's, in pooled rings or a pipe
//	set_buffer, add_to_buffer        none once relaying: the relay writes; before it, loop.Socket.Stash queues bytes for the peer
//	get_callback, set_callback       loop.Socket.Hook, and every connector's Hook field
//	stat_inc_opened, stat_inc_closed none: the proxy counts in Accepted and SocketClosed, on the in side, as the connectors called them
//	stat_opened, stat_closed         Proxy.Opened, Proxy.Closed (and Proxy.Stats for the metrics)
//	stat_total_opened, ..._closed    TotalOpened, TotalClosed; Server.TotalOpened, Server.TotalClosed
//	set_buffer_size (0.13)           Options.BufferSize (SetOptions, Server.SetOptions)
//	get_connections                  none: no list of connections is kept (it would cost a lock or a map per accept);
//	                                 Opened()-Closed() and the metrics' nproxy_connections_active count them
package nproxy
