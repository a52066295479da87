//go:build !race

// Not under -race: its sync.Pool drops items on purpose.

package hmacpool

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

// Once warm, a pooled check allocates nothing.
func TestPooledCheckAllocations(t *testing.T) {
	p := New(sha256.New, []byte("0123456789abcdef0123456789abcdef"))
	body := []byte(`{"type":"message.created"}`)
	m := p.Get()
	m.WriteString("msg_1.1764147600.")
	m.Write(body)
	sig := base64.StdEncoding.EncodeToString(m.Sum())
	p.Put(m)
	check := func() {
		m := p.Get()
		m.WriteString("msg_1.")
		m.WriteInt(1764147600)
		m.WriteString(".")
		m.Write(body)
		got, err := m.Decode(base64.StdEncoding.AppendDecode, sig)
		if err != nil || !hmac.Equal(got, m.Sum()) {
			t.Fatal("signature does not match")
		}
		p.Put(m)
	}
	check()
	if n := testing.AllocsPerRun(100, check); n != 0 {
		t.Errorf("a pooled check allocates %.1f times, want 0", n)
	}
}
