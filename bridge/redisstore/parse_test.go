package redisstore

import (
	"strings"
	"testing"

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

func FuzzDecodeSession(f *testing.F) {
	for _, s := range []string{
		"pl8:standardcs6:anon-1ch3:webst1:asa13:1764064800000ua13:1764064800000",
		"st1:s" + "id2:{}",
		"st1:vpd5:{bad}",
		"st1:zz",
		"pl99:x",
		"x",
		"st9223372036854775807:a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		_, _ = decodeSession(bridge.Key{Brand: "b", Conversation: "c"}, raw)
	})
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
		{"unknown state", "st1:z", "corrupt session state"},
		{"length past the end", "pl99:x", "corrupt session value"},
		{"no length", "plx", "corrupt session value"},
		{"bad identity", "st1:sid3:{x}", "corrupt session identity"},
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
