package loop

// Interest bits, as the watch lists translate them for the poller.
const (
	watchRead  uint8 = 1 << iota // the socket is in the readers list (or the listeners list)
	watchWrite                   // the socket is in the writers list
)

// event is one readiness report from the poller.
type event struct {
	fd       int
	readable bool // data, EOF, or an error to read
	writable bool
	hangup   bool // error or hang-up: the socket needs attention whatever it watches
}

// poller is the kernel readiness interface behind the loop. Keeping it this
// small is what lets the loop above stay free of epoll details.
type poller interface {
	// add starts watching fd with the given interest.
	add(fd int, interest uint8) error
	// modify changes fd's interest.
	modify(fd int, interest uint8) error
	// remove stops watching fd.
	remove(fd int) error
	// wait blocks up to timeoutMs (-1: forever) and appends ready events to evs.
	wait(evs []event, timeoutMs int) ([]event, error)
	close() error
}
