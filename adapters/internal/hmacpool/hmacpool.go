// Package hmacpool reuses keyed HMACs for webhook verification. hmac.New
// allocates six objects and hashes the key into both pads on every call; a
// pooled HMAC is Reset to its keyed state instead, and carries the buffers
// a check needs (its input, its sum, the received digest decoded), so
// verifying a webhook allocates nothing once the pool is warm.
package hmacpool

import (
	"crypto/hmac"
	"hash"
	"strconv"
	"sync"
)

// maxKept bounds a scratch buffer that goes back to the pool: headers are
// the sender's to size, and a pool must not keep an attacker's megabyte.
const maxKept = 1 << 10

// Pool hands out HMACs keyed with one secret. The zero value is not usable;
// build one with New. Safe for concurrent use.
type Pool struct {
	newHash func() hash.Hash
	key     []byte
	macs    sync.Pool // *MAC
}

// New returns a pool of HMAC-h keyed with key.
func New(h func() hash.Hash, key []byte) *Pool {
	return &Pool{newHash: h, key: key}
}

// Get returns a keyed HMAC in its initial state. Give it back with Put.
func (p *Pool) Get() *MAC {
	if m, ok := p.macs.Get().(*MAC); ok {
		return m
	}
	return NewMAC(p.newHash, p.key)
}

// Put resets m and returns it to the pool; m and every slice it returned
// must not be used afterwards.
func (p *Pool) Put(m *MAC) {
	m.h.Reset()
	for _, b := range []*[]byte{&m.scratch, &m.sum, &m.text, &m.got} {
		if cap(*b) > maxKept {
			*b = nil
		}
	}
	p.macs.Put(m)
}

// NewMAC returns an HMAC-h keyed with key, outside any pool: for a
// one-off signature.
func NewMAC(h func() hash.Hash, key []byte) *MAC {
	return &MAC{h: hmac.New(h, key)}
}

// MAC is a keyed HMAC with reusable buffers. The slices its methods return
// stay valid until the next call of the same method or Put.
type MAC struct {
	h       hash.Hash
	scratch []byte // WriteString's and WriteInt's bytes
	sum     []byte // Sum's result
	text    []byte // Decode's input
	got     []byte // Decode's result
}

// Write adds p to the message.
func (m *MAC) Write(p []byte) { m.h.Write(p) }

// WriteString adds s to the message (hash.Hash takes bytes: s is copied
// into a reused buffer rather than converted, which would allocate).
func (m *MAC) WriteString(s string) {
	m.scratch = append(m.scratch[:0], s...)
	m.h.Write(m.scratch)
}

// WriteInt adds n in decimal to the message.
func (m *MAC) WriteInt(n int64) {
	m.scratch = strconv.AppendInt(m.scratch[:0], n, 10)
	m.h.Write(m.scratch)
}

// Sum returns the MAC of the message written so far.
func (m *MAC) Sum() []byte {
	m.sum = m.h.Sum(m.sum[:0])
	return m.sum
}

// Decode decodes a received digest's text s with decode (such as
// base64.StdEncoding.AppendDecode or hex.AppendDecode), into a reused
// buffer.
func (m *MAC) Decode(decode func(dst, src []byte) ([]byte, error), s string) ([]byte, error) {
	m.text = append(m.text[:0], s...)
	var err error
	m.got, err = decode(m.got[:0], m.text)
	return m.got, err
}
