package connectors

// Destination is implemented by the State of a client socket whose in
// connector learned from the client where it wants to go, as a ptunnel
// client's tunnel request says. An out connector without a server of its
// own (tcp with neither host nor port) connects there.
type Destination interface {
	// Destination returns the host (an address) and port asked for.
	Destination() (host string, port int)
}
