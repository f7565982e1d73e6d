//go:build race

package proxyproto_test

const raceEnabled = true
