//go:build !race

package proxyproto_test

const raceEnabled = false
