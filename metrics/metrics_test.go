package metrics_test

import (
	"bytes"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/tcp"
	"github.com/nproxy/nproxy/metrics"
	"github.com/nproxy/nproxy/nproxytest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// curl fetches url with the real curl and returns the HTTP status and body.
func curl(t *testing.T, url string) (int, string) {
	t.Helper()
	out, err := exec.Command(nproxytest.Command(t, "curl"), "-s", "-m", "5", "-w", "\n%{http_code}", url).Output()
	if err != nil {
		t.Fatalf("curl %s: %v", url, err)
	}
	i := bytes.LastIndexByte(out, '\n')
	status, _ := strconv.Atoi(string(out[i+1:]))
	return status, string(out[:i])
}

func waitStatus(t *testing.T, url string, want int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		status, _ := curl(t, url)
		if status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status %d, want %d", url, status, want)
		}
	}
}

// server answers each connection with reply once the client half-closed.
func server(t *testing.T, reply int) int {
	return nproxytest.ServeTCP(t, func(c net.Conn) {
		io.Copy(io.Discard, c)
		c.Write(make([]byte, reply))
	})
}

func TestMetricsCountWhatWasSent(t *testing.T) {
	t.Parallel()
	const conns, sent, reply = 3, 100, 250
	srv := &nproxy.Server{}
	port, refusedPort := nproxytest.FreePort(t), nproxytest.FreePort(t)
	relay := nproxy.New(&tcp.In{Host: "127.0.0.1", Port: port}, &tcp.Out{Host: "127.0.0.1", Port: server(t, reply)})
	refusing := nproxy.New(&tcp.In{Host: "127.0.0.1", Port: refusedPort}, &tcp.Out{Host: "127.0.0.1", Port: nproxytest.FreePort(t)})

	ep, err := metrics.Start("127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	base := "http://" + ep.Addr().String()
	if status, _ := curl(t, base+"/healthz"); status != 200 {
		t.Errorf("/healthz: %d", status)
	}
	if status, _ := curl(t, base+"/readyz"); status != 503 {
		t.Errorf("/readyz before the listeners listen: %d, want 503", status)
	}
	nproxytest.StartServer(t, srv, 0, relay, refusing)
	waitStatus(t, base+"/readyz", 200)
	srv.SetDraining(true)
	waitStatus(t, base+"/readyz", 503)
	srv.SetDraining(false)
	waitStatus(t, base+"/readyz", 200)

	for i := 0; i < conns; i++ {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		c.Write(make([]byte, sent))
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, _ := io.ReadAll(c); len(got) != reply {
			t.Fatalf("read %d bytes, want %d", len(got), reply)
		}
		c.Close()
	}
	if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(refusedPort)); err == nil {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.ReadAll(c)
		c.Close()
	}
	for deadline := time.Now().Add(5 * time.Second); srv.TotalClosed() < conns+1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("closed %d connections, want %d", srv.TotalClosed(), conns+1)
		}
	}

	status, body := curl(t, base+"/metrics")
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"nproxy_connections_opened_total", map[string]string{"proxy": "1"}, conns},
		{"nproxy_connections_closed_total", map[string]string{"proxy": "1"}, conns},
		{"nproxy_connections_active", map[string]string{"proxy": "1"}, 0},
		// Short messages of a plain pair are copied, not spliced (the
		// loop splices only streams).
		{"nproxy_bytes_total", map[string]string{"proxy": "1", "direction": "in", "path": "copied"}, conns * sent},
		{"nproxy_bytes_total", map[string]string{"proxy": "1", "direction": "out", "path": "copied"}, conns * reply},
		{"nproxy_bytes_total", map[string]string{"proxy": "1", "direction": "in", "path": "spliced"}, 0},
		{"nproxy_relayed_bytes_total", map[string]string{"path": "copied"}, conns * (sent + reply)},
		{"nproxy_connect_errors_total", map[string]string{"proxy": "2", "kind": "refused"}, 1},
		{"nproxy_connect_errors_total", map[string]string{"proxy": "1", "kind": "refused"}, 0},
		{"nproxy_connections_opened_total", map[string]string{"proxy": "2"}, 1},
		{"nproxy_handshake_failures_total", map[string]string{"proxy": "1", "kind": "tls"}, 0},
		{"nproxy_ready", nil, 1},
	} {
		if got, ok := value(families, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	pass := families["nproxy_loop_pass_seconds"]
	if pass == nil || len(pass.Metric) != 1 || pass.Metric[0].GetHistogram().GetSampleCount() == 0 {
		t.Errorf("loop pass histogram: %v", pass)
	}
	if _, ok := value(families, "nproxy_loop_timers", map[string]string{"loop": "0"}); !ok {
		t.Error("no nproxy_loop_timers")
	}
}

// value finds the counter or gauge of name with exactly labels.
func value(families map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.Metric {
		if len(m.Label) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.Label {
			if labels[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		if m.Counter != nil {
			return m.Counter.GetValue(), true
		}
		return m.Gauge.GetValue(), true
	}
	return 0, false
}

// flowingIn is a tcp in connector that also keeps datagram flows, as the
// udp connector does, to show the hook that collects them.
type flowingIn struct{ tcp.In }

func (flowingIn) Flows() (int64, uint64) { return 2, 7 }

func TestFlowCounterCollected(t *testing.T) {
	t.Parallel()
	srv := &nproxy.Server{}
	srv.Register(nproxy.New(&flowingIn{}, &tcp.Out{Host: "127.0.0.1", Port: 1}))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.NewCollector(srv))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	if v, ok := value(byName, "nproxy_udp_flows_active", map[string]string{"proxy": "1"}); !ok || v != 2 {
		t.Errorf("udp_flows_active %v (found %v)", v, ok)
	}
	if v, ok := value(byName, "nproxy_udp_flows_opened_total", map[string]string{"proxy": "1"}); !ok || v != 7 {
		t.Errorf("udp_flows_opened_total %v (found %v)", v, ok)
	}
}
