package redisstore

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// A session is stored as a MessagePack map of string keys to string
// values, written by the scripts with Redis's built-in cmsgpack (see
// scripts.go). MessagePack rather than a hand-rolled Lua format because
// cmsgpack packs and unpacks in C: a Lua-level parser cost ~13 µs of Redis
// time per call, more than the commands the script runs.

var errCorruptSession = errors.New("redisstore: corrupt session value")

// legacy reports whether raw is a session written before MessagePack: a
// sequence of <name><len>:<value> fields, names in letters, so its first
// byte is a letter, which no MessagePack map starts with. Such sessions are
// read (and written back as MessagePack by the next script that saves them)
// so that an upgrade does not turn live conversations into errors; the
// reader can go once no bridge older than this one can have written a
// session within session_ttl.
func legacy(raw string) bool {
	return raw != "" && (raw[0] >= 'a' && raw[0] <= 'z' || raw[0] >= 'A' && raw[0] <= 'Z')
}

// decodeLegacyFields splits a session of the old format into its fields.
func decodeLegacyFields(raw string) (map[string]string, error) {
	f := make(map[string]string, 12)
	for raw != "" {
		i := 0
		for i < len(raw) && (raw[i] >= 'a' && raw[i] <= 'z' || raw[i] >= 'A' && raw[i] <= 'Z') {
			i++
		}
		j := i
		for j < len(raw) && raw[j] >= '0' && raw[j] <= '9' {
			j++
		}
		if i == 0 || j == i || j >= len(raw) || raw[j] != ':' {
			return nil, errCorruptSession
		}
		n, err := strconv.Atoi(raw[i:j])
		if err != nil || n < 0 || len(raw)-(j+1) < n {
			return nil, errCorruptSession
		}
		f[raw[:i]] = raw[j+1 : j+1+n]
		raw = raw[j+1+n:]
	}
	return f, nil
}

// decodeFields reads a session value into its fields. Only what cmsgpack
// writes for a table of strings is accepted (fixmap, map16, map32; fixstr,
// str8, str16, str32; integers, which a script that stored a number would
// produce, as decimal strings). Keys and values are slices of raw: no copy.
func decodeFields(raw string) (map[string]string, error) {
	if legacy(raw) {
		return decodeLegacyFields(raw)
	}
	n, pos, err := mpLen(raw, 0, 0x80, 0x8f, 0xde, 0xdf)
	if err != nil {
		return nil, err
	}
	if n > len(raw) { // each pair takes at least two bytes
		return nil, errCorruptSession
	}
	f := make(map[string]string, n)
	for range n {
		var k, v string
		if k, pos, err = mpString(raw, pos); err != nil {
			return nil, err
		}
		if v, pos, err = mpValue(raw, pos); err != nil {
			return nil, err
		}
		f[k] = v
	}
	if pos != len(raw) {
		return nil, errCorruptSession
	}
	return f, nil
}

// mpLen reads a container or string length whose fix form is fixLo..fixHi
// and whose 16- and 32-bit forms have the type bytes b16 and b32.
func mpLen(raw string, pos int, fixLo, fixHi, b16, b32 byte) (int, int, error) {
	if pos >= len(raw) {
		return 0, 0, errCorruptSession
	}
	switch t := raw[pos]; {
	case t >= fixLo && t <= fixHi:
		return int(t - fixLo), pos + 1, nil
	case t == b16 && pos+3 <= len(raw):
		return int(binary.BigEndian.Uint16([]byte(raw[pos+1 : pos+3]))), pos + 3, nil
	case t == b32 && pos+5 <= len(raw):
		return int(binary.BigEndian.Uint32([]byte(raw[pos+1 : pos+5]))), pos + 5, nil
	}
	return 0, 0, errCorruptSession
}

func mpString(raw string, pos int) (string, int, error) {
	var n int
	var err error
	if pos < len(raw) && raw[pos] == 0xd9 { // str8
		if pos+2 > len(raw) {
			return "", 0, errCorruptSession
		}
		n, pos = int(raw[pos+1]), pos+2
	} else if n, pos, err = mpLen(raw, pos, 0xa0, 0xbf, 0xda, 0xdb); err != nil {
		return "", 0, err
	}
	if n > len(raw)-pos {
		return "", 0, errCorruptSession
	}
	return raw[pos : pos+n], pos + n, nil
}

// mpValue reads a string, or an integer as its decimal string.
func mpValue(raw string, pos int) (string, int, error) {
	if pos >= len(raw) {
		return "", 0, errCorruptSession
	}
	t := raw[pos]
	var size int
	switch {
	case t <= 0x7f: // positive fixint
		return strconv.Itoa(int(t)), pos + 1, nil
	case t >= 0xe0: // negative fixint
		return strconv.Itoa(int(int8(t))), pos + 1, nil
	case t >= 0xcc && t <= 0xcf: // uint8..uint64
		size = 1 << (t - 0xcc)
	case t >= 0xd0 && t <= 0xd3: // int8..int64
		size = 1 << (t - 0xd0)
	default:
		return mpString(raw, pos)
	}
	if pos+1+size > len(raw) {
		return "", 0, errCorruptSession
	}
	var u uint64
	for _, c := range []byte(raw[pos+1 : pos+1+size]) {
		u = u<<8 | uint64(c)
	}
	if t >= 0xd0 { // signed: sign-extend from size bytes
		shift := uint(64 - 8*size)
		return strconv.FormatInt(int64(u<<shift)>>shift, 10), pos + 1 + size, nil
	}
	return strconv.FormatUint(u, 10), pos + 1 + size, nil
}
