package telemetry

import "context"

type requestIDKey struct{}

// requestIDCtx carries a request id: one allocation per request, where
// context.WithValue takes two (its context and the boxed string).
type requestIDCtx struct {
	context.Context
	id string
}

// Value answers the request-id key with the context itself (a pointer: no
// boxing on lookup) and hands every other key to the parent.
func (c *requestIDCtx) Value(key any) any {
	if key == (requestIDKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// WithRequestID returns ctx carrying the HTTP request id: every log line
// written with that context (slog's *Context methods), in any package,
// then carries it as request_id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return &requestIDCtx{Context: ctx, id: id}
}

// RequestID is the request id ctx carries, or "".
func RequestID(ctx context.Context) string {
	if c, ok := ctx.Value(requestIDKey{}).(*requestIDCtx); ok {
		return c.id
	}
	return ""
}
