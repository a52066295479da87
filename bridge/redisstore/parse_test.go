package redisstore

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// The decoders read what Redis holds and what workers hand back: corrupt or
// hostile input must give an error, never a panic.

func FuzzParseConv(f *testing.F) {
	for _, s := range []string{"4:acme:c-42", "0::", "4:acme:", "9223372036854775807:x", "-1:a:b", "3:a:b", "", ":", "1:{:}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := parseConv(s)
		if err == nil && conv(k) != s {
			t.Fatalf("parseConv(%q) = %+v, which encodes as %q", s, k, conv(k))
		}
	})
}

func FuzzConvRoundTrip(f *testing.F) {
	f.Add("acme", "c-42")
	f.Add("a:b", ":x:")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, brand, conversation string) {
		k := bridge.Key{Brand: brand, Conversation: conversation}
		got, err := parseConv(conv(k))
		if err != nil || got != k {
			t.Fatalf("round trip of %+v: %+v, %v", k, got, err)
		}
	})
}

// pack encodes a session the way the scripts' cmsgpack does (the library
// chooses the same shortest forms: fixmap, fixstr, str8, str16).
func pack(t testing.TB, fields map[string]string) string {
	t.Helper()
	b, err := msgpack.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func FuzzDecodeSession(f *testing.F) {
	for _, m := range []map[string]string{
		{"pl": "standard", "cs": "anon-1", "ch": "web", "st": "a", "sa": "1764064800000", "ua": "1764064800000"},
		{"st": "s", "id": "{}"},
		{"st": "v", "pd": "{bad}"},
		{"st": "zz"},
		{"st": "s", "id": strings.Repeat("x", 300)},
	} {
		f.Add(pack(f, m))
	}
	for _, s := range []string{
		// the format before MessagePack, still read
		"pl8:standardcs6:anon-1ch3:webst1:asa13:1764064800000ua13:1764064800000",
		"st1:s" + "id2:{}",
		"pl99:x",
		"st9223372036854775807:a",
	} {
		f.Add(s)
	}
	for _, s := range []string{"", "x", "\x81\xa2st", "\x81\xa2st\xd9\xff", "\x90", "\xdf\xff\xff\xff\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		_, _ = decodeSession(bridge.Key{Brand: "b", Conversation: "c"}, raw)
		// What decodeFields accepts, the library reads the same (integers
		// as numbers, which decodeFields renders as decimal strings).
		got, err := decodeFields(raw)
		if err != nil || legacy(raw) {
			return // (the library is not asked: it would allocate a map of a corrupt length)
		}
		var want map[string]any
		if libErr := msgpack.Unmarshal([]byte(raw), &want); libErr != nil {
			t.Fatalf("decodeFields(%q) accepted what msgpack refuses: %v", raw, libErr)
		}
		if len(got) != len(want) {
			t.Fatalf("decodeFields(%q) = %d fields, msgpack %d", raw, len(got), len(want))
		}
		for k, v := range got {
			if fmt.Sprint(want[k]) != v {
				t.Fatalf("decodeFields(%q)[%q] = %q, msgpack %v", raw, k, v, want[k])
			}
		}
	})
}

func TestDecodeFieldsForms(t *testing.T) {
	long := strings.Repeat("i", 70000) // str32
	for _, m := range []map[string]string{
		{"a": ""},
		{"st": "a", "x": strings.Repeat("y", 31)},  // fixstr edge
		{"st": "a", "x": strings.Repeat("y", 32)},  // str8
		{"st": "a", "x": strings.Repeat("y", 256)}, // str16
		{"st": "a", "x": long},
	} {
		raw := pack(t, m)
		got, err := decodeFields(raw)
		if err != nil || len(got) != len(m) {
			t.Fatalf("decodeFields of %d fields: %v, %v", len(m), len(got), err)
		}
		for k, v := range m {
			if got[k] != v {
				t.Fatalf("field %q: got %d bytes, want %d", k, len(got[k]), len(v))
			}
		}
	}
	big := make(map[string]string, 20) // map16
	for i := range 20 {
		big["k"+strconv.Itoa(i)] = strconv.Itoa(i)
	}
	if got, err := decodeFields(pack(t, big)); err != nil || len(got) != 20 {
		t.Fatalf("map16: %v, %v", got, err)
	}
	// Integers (a script storing a number) read as decimal strings.
	ints, _ := msgpack.Marshal(map[string]any{"a": 5, "b": -3, "c": 300, "d": int64(-1) << 40, "e": uint64(1) << 63})
	got, err := decodeFields(string(ints))
	want := map[string]string{"a": "5", "b": "-3", "c": "300", "d": "-1099511627776", "e": "9223372036854775808"}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ints: %v, %v", got, err)
	}
}

func FuzzParseHandle(f *testing.F) {
	for _, s := range []string{"3:1764064800000-0:1", "64:1-0:1", "-1:1-0:1", "1:1-0", "1:x-0:1", "1:1-0:x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseHandle(s)
		if err == nil && (h.p < 0 || h.p >= bridge.Partitions || !streamID(h.id)) {
			t.Fatalf("parseHandle(%q) accepted %+v", s, h)
		}
	})
}

func TestDecodeSessionErrors(t *testing.T) {
	tests := []struct{ name, raw, want string }{
		{"unknown state", pack(t, map[string]string{"st": "z"}), "corrupt session state"},
		{"length past the end", "\x81\xa2pl\xa9x", "corrupt session value"},
		{"not a map", "\x92\xa1a\xa1b", "corrupt session value"},
		{"trailing bytes", pack(t, map[string]string{"st": "a"}) + "x", "corrupt session value"},
		{"a float", "\x81\xa2st\xcb\x00\x00\x00\x00\x00\x00\x00\x00", "corrupt session value"},
		{"bad identity", pack(t, map[string]string{"st": "s", "id": "{x}"}), "corrupt session identity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeSession(bridge.Key{}, tt.raw)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("decodeSession(%q) = %v, want %q", tt.raw, err, tt.want)
			}
		})
	}
}

func TestLegacySessionsDecode(t *testing.T) {
	fields := map[string]string{"pl": "standard", "cs": "anon-1", "ch": "web", "st": "s", "sa": "1764064800000", "ua": "1764064800001", "id": `{"iss":"https://idp.example","sub":"u-1"}`}
	var old strings.Builder
	for _, k := range []string{"pl", "cs", "ch", "st", "sa", "ua", "id"} {
		fmt.Fprintf(&old, "%s%d:%s", k, len(fields[k]), fields[k])
	}
	key := bridge.Key{Brand: "b", Conversation: "c"}
	fromOld, err := decodeSession(key, old.String())
	if err != nil {
		t.Fatalf("legacy session: %v", err)
	}
	fromNew, err := decodeSession(key, pack(t, fields))
	if err != nil {
		t.Fatalf("MessagePack session: %v", err)
	}
	if !reflect.DeepEqual(fromOld, fromNew) || fromOld.Identity == nil || fromOld.Identity.Subject != "u-1" {
		t.Fatalf("legacy %+v\nMessagePack %+v", fromOld, fromNew)
	}
	for _, bad := range []string{"plx", "pl99:x", "st1:z"} {
		if _, err := decodeSession(key, bad); err == nil {
			t.Errorf("decodeSession(%q) accepted a corrupt legacy session", bad)
		}
	}
}
