package socks5

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/nproxy/nproxy/loop"
)

// fromClient relays one datagram from the client to its destination.
func (a *association) fromClient(d []byte, from *loop.PacketAddr, truncated bool) {
	st := &a.u.in.udp
	src := from.AddrPort()
	if src.Addr() != a.clientIP || (a.clientPort != 0 && src.Port() != a.clientPort) {
		st.Foreign.Add(1)
		a.debug("datagram from a foreign source %s dropped", src)
		return
	}
	a.client = *from
	a.last = time.Now()
	if truncated {
		st.Dropped.Add(1)
		return
	}
	h, data, err := parseUDPHeader(d)
	switch {
	case err != nil:
		st.BadHeaders.Add(1)
		a.debug("datagram dropped: %v", err)
		return
	case h.frag != 0:
		st.Fragments.Add(1)
		a.debug("fragment %d dropped: nproxy does not reassemble", h.frag)
		return
	}
	if hook := a.u.in.Hook; hook != nil {
		if data = hook(data, a.control); len(data) == 0 {
			return
		}
	}
	if h.addr.IsValid() {
		a.sendToAddr(netip.AddrPortFrom(h.addr, h.port), data)
	} else {
		a.sendToName(h.name, h.port, data)
	}
}

// sendToAddr sends data to a destination the client named by address,
// which the rules are asked about once.
func (a *association) sendToAddr(dst netip.AddrPort, data []byte) {
	d, known := a.dests[dst]
	if !d.checked {
		if !known && !a.room() {
			return
		}
		d = dest{checked: true, allowed: a.u.in.Permit(dst.Addr().String(), int(dst.Port()))}
		a.dests[dst] = d
		if !known {
			a.count++
		}
		if !d.allowed {
			a.info("%s port %d not allowed: its datagrams are dropped", dst.Addr(), dst.Port())
		}
	}
	if !d.allowed {
		a.u.in.udp.NotAllowed.Add(1)
		return
	}
	a.send(dst, data)
}

// sendToName sends data to a destination the client named by name: the
// rules are asked once per port, the name is resolved once (off the loop),
// and datagrams wait for it meanwhile.
func (a *association) sendToName(host []byte, port uint16, data []byte) {
	st := &a.u.in.udp
	nm := a.names[string(host)]
	if nm == nil {
		if !a.room() {
			return
		}
		nm = &name{}
		a.names[string(host)] = nm
	}
	allowed, known := nm.allowed(port)
	if !known {
		if !a.room() {
			return
		}
		allowed = a.u.in.Permit(string(host), int(port))
		nm.ports = append(nm.ports, namePort{port, allowed})
		a.count++
		if !allowed {
			a.info("%s port %d not allowed: its datagrams are dropped", host, port)
		}
	}
	switch {
	case !allowed:
		st.NotAllowed.Add(1)
	case nm.addr.IsValid():
		a.sendResolved(netip.AddrPortFrom(nm.addr, port), data)
	case nm.resolving:
		a.hold(nm, port, data)
	case time.Since(nm.failed) < nameRetry:
		st.Dropped.Add(1)
	default:
		a.hold(nm, port, data)
		a.resolve(string(host), nm)
	}
}

// allowed returns the rules' answer for port, and whether it was asked.
func (nm *name) allowed(port uint16) (allowed, known bool) {
	for _, p := range nm.ports {
		if p.port == port {
			return p.allowed, true
		}
	}
	return false, false
}

// room reports whether the association may have one more destination; if
// not, the datagram is counted as dropped.
func (a *association) room() bool {
	if a.count < a.u.in.maxDestinations() {
		return true
	}
	a.u.in.udp.Dropped.Add(1)
	a.debug("datagram to a new destination dropped: %d destinations (max_destinations)", a.count)
	return false
}

// hold keeps a datagram for a name being resolved, within the bounds.
func (a *association) hold(nm *name, port uint16, data []byte) {
	if a.held.n >= maxHeld || a.held.bytes+len(data) > maxHeldBytes {
		a.u.in.udp.Dropped.Add(1)
		return
	}
	nm.waiting = append(nm.waiting, heldDatagram{port, bytes.Clone(data)})
	a.held.n++
	a.held.bytes += len(data)
}

// resolve looks host up off the loop, then sends what waited for it.
func (a *association) resolve(host string, nm *name) {
	nm.resolving = true
	a.l.Resolve(host, a.u.in.timeout(), func(addrs []netip.Addr, err error) {
		nm.resolving = false
		waiting := nm.waiting
		nm.waiting = nil
		for _, w := range waiting {
			a.held.n--
			a.held.bytes -= len(w.data)
		}
		if a.control.Closed() {
			return
		}
		if nm.addr = a.pick(addrs); !nm.addr.IsValid() {
			nm.failed = time.Now()
			a.u.in.udp.Dropped.Add(uint64(len(waiting)))
			a.info("can't resolve %s (%v): its datagrams are dropped", host, err)
			return
		}
		for _, w := range waiting {
			a.sendResolved(netip.AddrPortFrom(nm.addr, w.port), w.data)
		}
	})
}

// pick returns the first address the outgoing socket can reach.
func (a *association) pick(addrs []netip.Addr) netip.Addr {
	for _, ad := range addrs {
		if a.out6 || ad.Is4() {
			return ad
		}
	}
	return netip.Addr{}
}

// sendResolved sends data to a name's address, whose replies are let
// through from then on.
func (a *association) sendResolved(dst netip.AddrPort, data []byte) {
	if _, ok := a.dests[dst]; !ok {
		a.dests[dst] = dest{}
	}
	a.send(dst, data)
}

// send sends one datagram to dst from the outgoing socket; one the kernel
// cannot take is dropped, as the network would.
func (a *association) send(dst netip.AddrPort, data []byte) {
	st := &a.u.in.udp
	if !a.out6 && !dst.Addr().Is4() {
		st.Dropped.Add(1)
		return
	}
	a.to.SetAddrPort(dst, a.out6)
	if err := loop.SendTo(a.out.Fd(), data, &a.to); err != nil {
		st.Dropped.Add(1)
		a.debug("datagram to %s dropped: %v", dst, err)
		return
	}
	st.DatagramsIn.Add(1)
	st.BytesIn.Add(uint64(len(data)))
}

// fromDestination relays one datagram from a destination to the client,
// with the header naming its source.
func (a *association) fromDestination(d []byte, from *loop.PacketAddr, truncated bool) {
	st := &a.u.in.udp
	src := from.AddrPort()
	if _, ok := a.dests[src]; !ok {
		st.Foreign.Add(1)
		a.debug("datagram from %s, not a destination, dropped", src)
		return
	}
	a.last = time.Now()
	if truncated {
		st.Dropped.Add(1)
		return
	}
	a.u.reply = append(appendUDPHeader(a.u.reply[:0], src), d...)
	if err := loop.SendTo(a.relay.Fd(), a.u.reply, &a.client); err != nil {
		st.Dropped.Add(1)
		a.debug("datagram from %s dropped: %v", src, err)
		return
	}
	st.DatagramsOut.Add(1)
	st.BytesOut.Add(uint64(len(d)))
}

func (a *association) debug(format string, args ...any) {
	if log := a.l.Logger(); log.Enabled(context.Background(), loop.LevelDebug) {
		log.Debug(fmt.Sprintf("socks5 in: %s: UDP ", a.control.Nick()) + fmt.Sprintf(format, args...))
	}
}

func (a *association) info(format string, args ...any) {
	a.l.Logger().Info(fmt.Sprintf("socks5 in: %s: UDP ", a.control.Nick()) + fmt.Sprintf(format, args...))
}
