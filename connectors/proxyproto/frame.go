package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// Limits of the framing. MaxV1Header is the spec's; MaxV2Header is nproxy's
// bound on a v2 header with its TLVs (the format allows 16+65535 bytes).
const (
	MaxV1Header = 107
	MaxV2Header = 4096
)

var (
	sigV1 = []byte("PROXY ")
	sigV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// Errors of the framing, each a reason to refuse the client.
var (
	ErrNotProxy  = errors.New("not a PROXY protocol header")
	ErrTooLong   = errors.New("PROXY header too long")
	ErrWrongMode = errors.New("PROXY header of a version not accepted here")
)

// frame looks at data, the first bytes a client sent, and says how many of
// them surely belong to the PROXY header (n) and whether the header is
// complete (then n is its whole length). version is 1, 2, or 0 for either.
// Bytes after the header are never counted, so the connector that follows
// gets them.
func frame(data []byte, version int) (n int, complete bool, err error) {
	if len(data) == 0 {
		return 0, false, nil
	}
	switch data[0] {
	case sigV1[0]:
		if version == 2 {
			return 0, false, ErrWrongMode
		}
		return frameV1(data)
	case sigV2[0]:
		if version == 1 {
			return 0, false, ErrWrongMode
		}
		return frameV2(data)
	}
	return 0, false, ErrNotProxy
}

func frameV1(data []byte) (int, bool, error) {
	if !bytes.HasPrefix(data, sigV1[:min(len(data), len(sigV1))]) {
		return 0, false, ErrNotProxy
	}
	if i := bytes.IndexByte(data[:min(len(data), MaxV1Header)], '\n'); i >= 0 {
		return i + 1, true, nil
	}
	if len(data) >= MaxV1Header {
		return 0, false, ErrTooLong
	}
	return len(data), false, nil
}

func frameV2(data []byte) (int, bool, error) {
	if !bytes.HasPrefix(data, sigV2[:min(len(data), len(sigV2))]) {
		return 0, false, ErrNotProxy
	}
	if len(data) < 16 {
		return len(data), false, nil
	}
	total := 16 + int(binary.BigEndian.Uint16(data[14:16]))
	if total > MaxV2Header {
		return 0, false, ErrTooLong
	}
	if len(data) >= total {
		return total, true, nil
	}
	return len(data), false, nil
}
