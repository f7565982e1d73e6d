package main

import (
	"context"
	"fmt"

	"github.com/nproxy/nproxy"
)

// reloader re-reads the command line's files on SIGHUP and hands the new
// proxies to the running Server (nproxy.Server.Reload): proxies whose in
// side is unchanged keep their listeners and connections, and serve new
// clients with their new out side; new ones listen; removed ones drain.
// A configuration that does not decode or build changes nothing: the
// error is logged and the running one stays. Settings other than the
// proxies (loops, buffer sizes, the global limits, grace) need a restart.
func reloader(args []string) func() {
	return func() {
		log := nproxy.Logger()
		log.Log(context.Background(), nproxy.LevelNotice, "Caught HUP signal: reloading")
		_, proxies, err := configure(args)
		if err == nil {
			err = nproxy.DefaultServer.Reload(proxies)
		}
		if err != nil {
			log.Error(fmt.Sprintf("reload: %v (the running configuration stays)", err))
			return
		}
		log.Log(context.Background(), nproxy.LevelNotice, fmt.Sprintf("reloaded: %d proxies", len(proxies)))
	}
}

// onReload sets what SIGHUP does once the proxies run.
func (c *signalCatcher) onReload(f func()) {
	c.mu.Lock()
	c.reload = f
	c.mu.Unlock()
}
