package nproxy_test

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/nproxytest"
)

// The cost per connection of Net::Proxy's notice lines and the access line
// (verbosity=1), or of the access line alone in an access log at verbosity
// 0 (access-log), written to a file: compare with verbosity 0.
func BenchmarkConnectionLog(b *testing.B) {
	for _, tc := range []struct {
		name      string
		verbosity int
		accessLog bool
	}{{"verbosity=0", 0, false}, {"verbosity=1", 1, false}, {"access-log", 0, true}} {
		b.Run(tc.name, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "log"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			srv := &nproxy.Server{}
			srv.SetVerbosity(tc.verbosity)
			srv.SetLogOutput(f)
			if tc.accessLog {
				srv.SetAccessLog(f)
			}
			echo := newBackend(b)
			go func() {
				for c := range echo.conns {
					go func() { io.Copy(c, c); c.Close() }()
				}
			}()
			p, port := tcpProxy(b, echo.port)
			nproxytest.StartServer(b, srv, 0, p)
			buf := make([]byte, 64)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c := nproxytest.Dial(b, port)
				c.Write(buf)
				io.ReadFull(c, buf)
				c.Close()
			}
		})
	}
}
