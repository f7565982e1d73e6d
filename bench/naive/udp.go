package naive

import (
	"net"
	"sync"
	"time"
)

// udpIdle is how long a flow of ServeUDP lives without a reply.
const udpIdle = 60 * time.Second

// ServeUDP relays datagrams from ln to target the way a Go programmer would
// first write it: a map of client addresses under a mutex, one connected
// socket and one goroutine per flow reading the replies. It returns when ln
// fails.
func ServeUDP(ln *net.UDPConn, target string) error {
	var mu sync.Mutex
	flows := map[string]*net.UDPConn{}
	buf := make([]byte, 65536)
	for {
		n, from, err := ln.ReadFromUDP(buf)
		if err != nil {
			return err
		}
		key := from.String()
		mu.Lock()
		up := flows[key]
		if up == nil {
			c, err := net.Dial("udp", target)
			if err != nil {
				mu.Unlock()
				continue
			}
			up = c.(*net.UDPConn)
			flows[key] = up
			go func() {
				replies(ln, up, from)
				mu.Lock()
				delete(flows, key)
				mu.Unlock()
				up.Close()
			}()
		}
		mu.Unlock()
		up.Write(buf[:n])
	}
}

// replies sends what the server answers back to the client until the flow
// has been idle for udpIdle or the server refuses.
func replies(ln, up *net.UDPConn, client *net.UDPAddr) {
	buf := make([]byte, 65536)
	for {
		up.SetReadDeadline(time.Now().Add(udpIdle))
		n, err := up.Read(buf)
		if err != nil {
			return
		}
		ln.WriteToUDP(buf[:n], client)
	}
}
