package telemetry

import "context"

type requestIDKey struct{}

// WithRequestID returns ctx carrying the HTTP request id: every log line
// written with that context (slog's *Context methods), in any package,
// then carries it as request_id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID is the request id ctx carries, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
