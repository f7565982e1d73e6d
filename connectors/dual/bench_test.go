package dual

import (
	"os"
	"testing"
)

// BenchmarkProbes measures one decision on a real opening: the whole list
// run over Go's 1.5 KB ClientHello (SNI and ALPN), and over an SSH banner.
func BenchmarkProbes(b *testing.B) {
	hello, err := os.ReadFile(helloFile("go-sni-alpn"))
	if err != nil {
		b.Fatal(err)
	}
	list := Probes{List: []Probe{SSH{}, HTTP{Host: []string{"*.example.com"}}, TLS{SNI: []string{"*.example.com"}, ALPN: []string{"h2"}}, Any{}}}
	for _, c := range []struct {
		name string
		in   []byte
		want int
	}{{"tls", hello, 2}, {"ssh", []byte(sshBanner), 0}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.in)))
			for b.Loop() {
				if i, v := list.Check(c.in); i != c.want || v != Match {
					b.Fatalf("probe %d %v", i, v)
				}
			}
		})
	}
}
