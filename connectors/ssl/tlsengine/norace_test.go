//go:build !race

package tlsengine

const raceEnabled = false
