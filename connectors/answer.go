package connectors

import "github.com/nproxy/nproxy/loop"

// Answerer is implemented by the State of a client whose in connector owes
// it an answer once its server is reached or not: a SOCKS5 reply, a CONNECT
// status line. The proxy calls it through Answer.
type Answerer interface {
	// Answer tells the client that server was reached (err nil) or why it
	// was not. An error it returns (the client is gone) fails the
	// connection.
	Answer(client, server *loop.Socket, err error) error
}

// Answer gives client its answer if its in connector owes one, before the
// relay starts (err nil) or before it is closed (err the failure). A client
// that left meanwhile gets none: its fd number may be another socket's.
func Answer(client, server *loop.Socket, err error) error {
	if client.Closed() {
		return loop.ErrClosed
	}
	if a, ok := client.State.(Answerer); ok {
		return a.Answer(client, server, err)
	}
	return nil
}
