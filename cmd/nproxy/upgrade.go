package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/loop"
)

// Binary upgrade and socket activation share one mechanism: listening
// sockets passed as fds 3, 4... with LISTEN_FDS=n (systemd's convention,
// sd_listen_fds(3)). An nproxy given them listens on them instead of
// binding: the same sockets, backlog included, so that no client is
// refused while one process hands over to the next. (SO_REUSEPORT
// overlap was the other choice: it needs no fd passing, but closing the
// old process's listeners drops the clients queued in their backlogs,
// unless the kernel migrates them, net.ipv4.tcp_migrate_req, off by
// default and missing before Linux 5.14.)
//
// SIGUSR2 upgrades: nproxy starts its executable again with the same
// arguments and its listeners, waits until the new process is ready
// (it writes a byte on the fd named by NPROXY_READY_FD), then drains as on
// SIGTERM. If the new process fails or is not ready within upgradeWait,
// it is killed and the old one goes on.
const (
	listenFdsStart = 3
	readyFdEnv     = "NPROXY_READY_FD"
	upgradeWait    = 30 * time.Second
)

// inheritedAny says that inheritListeners took sockets.
var inheritedAny bool

// inheritListeners takes the sockets systemd or an upgrading nproxy passed.
func inheritListeners() error {
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return nil
	}
	if pid := os.Getenv("LISTEN_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return nil // meant for another process
	}
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDNAMES")
	inheritedAny = true
	for fd := listenFdsStart; fd < listenFdsStart+n; fd++ {
		if err := loop.Inherit(fd); err != nil {
			return fmt.Errorf("LISTEN_FDS: fd %d: %w", fd, err)
		}
	}
	return nil
}

// announceReady waits until the proxies serve, then lets the inherited
// sockets no listener took go, and tells an upgrading parent.
func announceReady() {
	fd, err := strconv.Atoi(os.Getenv(readyFdEnv))
	os.Unsetenv(readyFdEnv)
	if !inheritedAny && err != nil {
		return
	}
	go func() {
		for deadline := time.Now().Add(upgradeWait); !nproxy.DefaultServer.Ready(); time.Sleep(stopPoll) {
			if time.Now().After(deadline) {
				return
			}
		}
		loop.ReleaseInherited()
		if err == nil {
			f := os.NewFile(uintptr(fd), "ready")
			f.Write([]byte{1})
			f.Close()
		}
	}()
}

// upgrade starts the new process and, once it is ready, drains this one.
func (c *signalCatcher) upgrade() {
	log := nproxy.Logger()
	child, err := startUpgrade()
	if err != nil {
		log.Error("upgrade: " + err.Error() + " (this process goes on)")
		c.upgrading.Store(false)
		return
	}
	log.Log(context.Background(), nproxy.LevelNotice, fmt.Sprintf("upgrade: process %d ready, draining", child))
	go c.retry(c.drain)
}

func startUpgrade() (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	fds, err := nproxy.DefaultServer.ListenerFds()
	if err != nil {
		return 0, err
	}
	files := make([]*os.File, len(fds))
	for i, fd := range fds {
		files[i] = os.NewFile(uintptr(fd), "listener")
		defer files[i].Close()
	}
	ready, readyW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer ready.Close()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.ExtraFiles = append(files, readyW)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(environWithout("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", readyFdEnv),
		"LISTEN_FDS="+strconv.Itoa(len(files)), readyFdEnv+"="+strconv.Itoa(listenFdsStart+len(files)))
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		return 0, err
	}
	ready.SetReadDeadline(time.Now().Add(upgradeWait))
	if n, _ := ready.Read(make([]byte, 1)); n != 1 {
		cmd.Process.Kill()
		cmd.Wait()
		return 0, errors.New("the new process did not become ready")
	}
	go cmd.Wait() // it outlives this process, which must not leave a zombie meanwhile
	return cmd.Process.Pid, nil
}

func environWithout(names ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || k == n
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return env
}
