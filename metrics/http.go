package metrics

import (
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves srv's metrics at /metrics (with the Go runtime's and the
// process's), liveness at /healthz (200 while the process runs) and
// readiness at /readyz (200 when srv.Ready, 503 otherwise).
func Handler(srv *nproxy.Server) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(srv), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !srv.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	return mux
}

// Endpoint is Handler served on a port of its own.
type Endpoint struct {
	ln net.Listener
	hs *http.Server
}

// Start listens on addr (host:port) and serves Handler(srv) there in the
// background. An address that cannot be bound is an error now, before the
// relay starts.
func Start(addr string, srv *nproxy.Server) (*Endpoint, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	// The timeouts bound what a slow or idle scraper holds.
	hs := &http.Server{Handler: Handler(srv), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			srv.Logger().Error("metrics: " + err.Error())
		}
	}()
	return &Endpoint{ln: ln, hs: hs}, nil
}

// Addr returns the address the endpoint listens on.
func (e *Endpoint) Addr() net.Addr { return e.ln.Addr() }

// Close stops serving.
func (e *Endpoint) Close() error { return e.hs.Close() }
