// Package metrics serves an nproxy.Server's Prometheus metrics, with its
// liveness and readiness, on one HTTP port:
//
//	srv := &nproxy.Server{}
//	srv.Register(nproxy.New(&tcp.In{Port: 6789}, &tcp.Out{Host: "remotehost", Port: 9876}))
//	ep, err := metrics.Start("127.0.0.1:9100", srv) // /metrics, /healthz, /readyz
//	if err != nil { ... }
//	defer ep.Close()
//	srv.Mainloop(0)
//
// The relay pays nothing for them per byte and takes no lock: loops and
// proxies keep plain or atomic counters, and the Collector reads them when
// Prometheus scrapes.
package metrics

import (
	"strconv"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector is a prometheus.Collector of one Server's counters.
type Collector struct {
	srv *nproxy.Server
}

// NewCollector returns a Collector of srv's counters.
func NewCollector(srv *nproxy.Server) *Collector { return &Collector{srv: srv} }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("nproxy_"+name, help, labels, nil)
}

var (
	openedDesc     = desc("connections_opened_total", "Connections accepted, counted on the in side as in Net::Proxy.", "proxy")
	closedDesc     = desc("connections_closed_total", "Connections that ended.", "proxy")
	activeDesc     = desc("connections_active", "Connections open now.", "proxy")
	bytesDesc      = desc("bytes_total", "Bytes of closed connections: in from clients, out to them, by relay path.", "proxy", "direction", "path")
	relayedDesc    = desc("relayed_bytes_total", "Bytes relayed by all proxies so far, open connections included, by path.", "path")
	connectErrDesc = desc("connect_errors_total", "Failures to reach a server, by kind.", "proxy", "kind")
	handshakeDesc  = desc("handshake_failures_total", "Failed handshakes (TLS, CONNECT, PROXY, SOCKS).", "proxy", "kind")
	routeDesc      = desc("route_decisions_total", "Clients sent to each route by a routing in connector (dual).", "proxy", "route")
	flowsDesc      = desc("udp_flows_active", "Datagram flows open now.", "proxy")
	flowsTotalDesc = desc("udp_flows_opened_total", "Datagram flows opened.", "proxy")
	passDesc       = desc("loop_pass_seconds", "Time a loop spends per pass over its ready sockets, timers and closes.", "loop")
	timersDesc     = desc("loop_timers", "Timers pending on a loop.", "loop")
	readyDesc      = desc("ready", "1 when every listener listens and the server is not draining.")
)

var allDescs = []*prometheus.Desc{openedDesc, closedDesc, activeDesc, bytesDesc, relayedDesc,
	connectErrDesc, handshakeDesc, routeDesc, flowsDesc, flowsTotalDesc, passDesc, timersDesc, readyDesc}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for i, p := range c.srv.Proxies() {
		c.collectProxy(p.Stats(), strconv.Itoa(i+1), counter, gauge)
	}
	counter(relayedDesc, float64(c.srv.SplicedBytes()), "spliced")
	counter(relayedDesc, float64(c.srv.CopiedBytes()), "copied")
	for i, st := range c.srv.PassStats() {
		id := strconv.Itoa(i)
		ch <- passHistogram(st, id)
		gauge(timersDesc, float64(st.Timers), id)
	}
	ready := 0.0
	if c.srv.Ready() {
		ready = 1
	}
	gauge(readyDesc, ready)
}

type emit func(d *prometheus.Desc, v float64, labels ...string)

func (c *Collector) collectProxy(st nproxy.ProxyStats, id string, counter, gauge emit) {
	counter(openedDesc, float64(st.Opened), id)
	counter(closedDesc, float64(st.Closed), id)
	gauge(activeDesc, float64(st.Opened-st.Closed), id)
	t := st.Traffic
	counter(bytesDesc, float64(t.InSpliced), id, "in", "spliced")
	counter(bytesDesc, float64(t.InCopied), id, "in", "copied")
	counter(bytesDesc, float64(t.OutSpliced), id, "out", "spliced")
	counter(bytesDesc, float64(t.OutCopied), id, "out", "copied")
	for _, k := range nproxy.ConnectErrorKinds() {
		counter(connectErrDesc, float64(st.ConnectErrors[k]), id, k.String())
	}
	for k := connectors.Handshake(0); k < connectors.NumHandshakes; k++ {
		counter(handshakeDesc, float64(st.HandshakeFailures[k]), id, k.String())
	}
	for _, r := range st.Routes {
		counter(routeDesc, float64(r.Count), id, r.Route)
	}
	if st.HasFlows {
		gauge(flowsDesc, float64(st.FlowsActive), id)
		counter(flowsTotalDesc, float64(st.FlowsOpened), id)
	}
}

// passHistogram turns a loop's bucket counts into Prometheus's cumulative
// histogram.
func passHistogram(st loop.PassStats, id string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(loop.PassBuckets))
	var cum uint64
	for i, le := range loop.PassBuckets {
		cum += st.Buckets[i]
		buckets[le.Seconds()] = cum
	}
	return prometheus.MustNewConstHistogram(passDesc, st.Count(), st.Sum.Seconds(), buckets, id)
}
