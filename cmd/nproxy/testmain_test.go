package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// nproxyBin is the command built once by TestMain, so that tests run it
// as users do.
var nproxyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nproxy-cmd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	nproxyBin = filepath.Join(dir, "nproxy")
	build := exec.Command("go", "build", "-race", "-o", nproxyBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building nproxy:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
