package httptunnel

import (
	"fmt"
	"testing"
	"time"
)

// dumpSessions logs the state of out's sessions and of their busy
// streams, read on their loops: a test that stalls says where.
func dumpSessions(t *testing.T, out *Out) {
	out.mu.Lock()
	defer out.mu.Unlock()
	for l, m := range out.sessions {
		done := make(chan string, 1)
		l.Post(func() {
			s := fmt.Sprintf("session room=%d waiting=%d err=%v in=%d", m.room(), len(m.waiting), m.err, len(m.in))
			if w, ok := m.vs.Transport().(*wsConn); ok {
				s += fmt.Sprintf(" ws raw=%d off=%d inFrame=%v left=%d out=%d reading=%v writing=%v", len(w.raw), w.rawOff, w.inFrame, w.left, w.Buffered(), m.vs.Reading(), m.vs.Writing())
			}
			for _, st := range m.streams {
				if st.in.Len() > 0 || st.credit < muxWindowSize || st.s.Pending() > 0 {
					s += fmt.Sprintf("\n stream %d in=%d unacked=%d credit=%d queued=%v pending=%d reading=%v sig=%v", st.id, st.in.Len(), st.unacked, st.credit, st.queued, st.s.Pending(), st.s.Reading(), st.signaled)
				}
			}
			done <- s
		})
		select {
		case s := <-done:
			t.Log(s)
		case <-time.After(time.Second):
			t.Log("loop stuck")
		}
	}
}
