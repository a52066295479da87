// Package telemetrytest helps tests look at what the service logs.
package telemetrytest

import (
	"bytes"
	"sync"
)

// LogBuffer collects log output written from many goroutines (handlers,
// outbox workers); tests read it with String.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (s *LogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *LogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
