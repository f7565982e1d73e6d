package main

import (
	"fmt"
	"net"
	"os"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/metrics"
)

// observeOptions are the command's observability options, given as
// --log-format FORMAT and --metrics HOST:PORT; parseArgs hands them here.
var observeOptions = map[string]func(value string) error{
	"--log-format": func(v string) error {
		f, err := nproxy.ParseLogFormat(v)
		if err != nil {
			return fmt.Errorf("--log-format: %w", err)
		}
		nproxy.SetLogFormat(f)
		return nil
	},
	"--metrics": func(v string) error {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("--metrics needs host:port, not %q", v)
		}
		metricsAddr = v
		return nil
	},
}

// metricsAddr is where --metrics serves; empty means no metrics.
var metricsAddr string

// startMetrics serves /metrics, /healthz and /readyz on metricsAddr, if
// set; the returned function stops it.
func startMetrics() (stop func(), err error) {
	if metricsAddr == "" {
		return func() {}, nil
	}
	ep, err := metrics.Start(metricsAddr, nproxy.DefaultServer)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	return func() { ep.Close() }, nil
}

// openAccessLog sends the access lines to path (appended to, created if
// need be; "-" is standard error), if set. A path that cannot be opened is
// a configuration error, found before anything listens. The returned
// function closes the file, once Mainloop has written its last lines.
func openAccessLog(path string) (closeLog func(), err error) {
	switch path {
	case "":
		return func() {}, nil
	case "-":
		nproxy.SetAccessLog(os.Stderr)
		return func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("access_log: %w", err)
	}
	nproxy.SetAccessLog(f)
	return func() { f.Close() }, nil
}
