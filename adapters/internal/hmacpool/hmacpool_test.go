package hmacpool

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func want(h func() hash.Hash, key []byte, parts ...string) []byte {
	m := hmac.New(h, key)
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// A MAC taken back from the pool starts from the keyed state: nothing of
// the previous message carries over (fails without the Reset in Put).
func TestReusedMACStartsAfresh(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	p := New(sha256.New, key)
	for i := range 5 {
		m := p.Get()
		m.WriteString("msg_")
		m.WriteInt(int64(i))
		m.Write([]byte(".body"))
		assert.Equal(t, want(sha256.New, key, "msg_", strconv.Itoa(i), ".body"), m.Sum(), "round %d", i)
		p.Put(m)
	}
}

// Pools of different keys and hashes never mix, under concurrent use.
func TestPoolsConcurrent(t *testing.T) {
	keyA, keyB := []byte("key A, long enough for anything"), []byte("key B, long enough for anything")
	pools := []struct {
		p   *Pool
		h   func() hash.Hash
		key []byte
	}{
		{New(sha256.New, keyA), sha256.New, keyA},
		{New(sha256.New, keyB), sha256.New, keyB},
		{New(sha1.New, keyA), sha1.New, keyA},
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				pc := pools[(g+i)%len(pools)]
				msg := strconv.Itoa(g) + "/" + strconv.Itoa(i)
				m := pc.p.Get()
				m.WriteString(msg)
				got := m.Sum()
				if !hmac.Equal(got, want(pc.h, pc.key, msg)) {
					t.Errorf("goroutine %d, message %s: wrong MAC", g, msg)
				}
				pc.p.Put(m)
			}
		})
	}
	wg.Wait()
}

func TestDecode(t *testing.T) {
	m := NewMAC(sha256.New, []byte("k"))
	sum := want(sha256.New, []byte("k"), "x")
	got, err := m.Decode(base64.StdEncoding.AppendDecode, base64.StdEncoding.EncodeToString(sum))
	require.NoError(t, err)
	assert.Equal(t, sum, got)
	got, err = m.Decode(hex.AppendDecode, hex.EncodeToString(sum[:4]))
	require.NoError(t, err)
	assert.Equal(t, sum[:4], got, "a shorter second decode leaves nothing of the first")
	_, err = m.Decode(base64.StdEncoding.AppendDecode, "not base64!")
	assert.Error(t, err)
}

// A sender sizes the headers: a MAC that decoded a huge one goes back to
// the pool without that buffer.
func TestPutDropsLargeBuffers(t *testing.T) {
	p := New(sha256.New, []byte("k"))
	m := p.Get()
	m.WriteString(strings.Repeat("i", 4*maxKept))
	_, _ = m.Decode(base64.StdEncoding.AppendDecode, strings.Repeat("A", 4*maxKept))
	small, err := m.Decode(hex.AppendDecode, "00") // short contents, the capacity stays
	require.NoError(t, err)
	require.Len(t, small, 1)
	p.Put(m)
	assert.Nil(t, m.scratch)
	assert.Nil(t, m.text)
	assert.Nil(t, m.got)
	assert.NotNil(t, m.h)
}
