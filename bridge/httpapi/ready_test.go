package httpapi

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadyzHidesDetail: /readyz names what is not ready, never the error
// text (addresses, issuer URLs), which only the log gets.
func TestReadyzHidesDetail(t *testing.T) {
	f := newFixture(t)
	f.store.down.Store(true)
	w := f.do(t, http.MethodGet, "/readyz", nil, nil)
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	var body map[string]string
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body))
	assert.Equal(t, map[string]string{"status": "unavailable", "reason": "store not ready"}, body)
	assert.NotContains(t, w.Body.String(), errDown.Error())
}
