package nproxy_test

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/nproxytest"
)

// The cost per connection of Net::Proxy's notice lines and the access line,
// written to a file: compare with verbosity 0.
func BenchmarkConnectionLog(b *testing.B) {
	for _, v := range []int{0, 1} {
		b.Run("verbosity="+strconv.Itoa(v), func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "log"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			srv := &nproxy.Server{}
			srv.SetVerbosity(v)
			srv.SetLogOutput(f)
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
				c := dial(b, port)
				c.Write(buf)
				io.ReadFull(c, buf)
				c.Close()
			}
		})
	}
}
