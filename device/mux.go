package device

import (
	"context"
	"encoding/json"
	"sync"
)

// MethodHandler answers direct methods.
//
// ServeMethod runs on one of the client's worker goroutines, never on a
// network goroutine, and may block; ctx carries the method deadline
// (ClientOptions.MethodTimeout) and is cancelled when the client shuts
// down. It may be called concurrently for different requests.
type MethodHandler interface {
	ServeMethod(ctx context.Context, req *MethodRequest) (*MethodResponse, error)
}

// MethodHandlerFunc adapts a function to a MethodHandler.
type MethodHandlerFunc func(ctx context.Context, req *MethodRequest) (*MethodResponse, error)

// ServeMethod calls f.
func (f MethodHandlerFunc) ServeMethod(ctx context.Context, req *MethodRequest) (*MethodResponse, error) {
	return f(ctx, req)
}

// StatusNotImplemented is the status of the answer to a method no handler
// is registered for.
const StatusNotImplemented = 501

// MethodMux routes requests to handlers by method name. Names are matched
// exactly. Requests for names without a handler go to the default handler,
// or, without one, are answered at once with 501 and
// {"error": "method not implemented", "method": name}. IoT Plug and Play
// component commands are methods named "{component}*{command}"
// (HandleCommand); a command of an unknown component is answered the same
// way.
//
// A MethodMux is safe for concurrent use; handlers may be added while the
// client runs. Its zero value is ready to use.
type MethodMux struct {
	mu       sync.RWMutex
	handlers map[string]MethodHandler
	fallback MethodHandler
}

// NewMethodMux returns an empty MethodMux.
func NewMethodMux() *MethodMux { return &MethodMux{} }

// Handle registers h for the method name. It panics if name is empty, h is
// nil, or name already has a handler: these are programming errors.
func (m *MethodMux) Handle(name string, h MethodHandler) {
	if name == "" {
		panic("device: MethodMux.Handle with an empty method name")
	}
	if h == nil {
		panic("device: MethodMux.Handle with a nil handler for " + name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.handlers[name]; dup {
		panic("device: MethodMux.Handle called twice for " + name)
	}
	if m.handlers == nil {
		m.handlers = make(map[string]MethodHandler)
	}
	m.handlers[name] = h
}

// HandleFunc registers f for the method name, like Handle.
func (m *MethodMux) HandleFunc(name string, f func(ctx context.Context, req *MethodRequest) (*MethodResponse, error)) {
	if f == nil {
		panic("device: MethodMux.HandleFunc with a nil function for " + name)
	}
	m.Handle(name, MethodHandlerFunc(f))
}

// HandleDefault registers the catch-all handler for methods without a
// handler of their own, replacing any earlier one; nil restores the 501
// answer.
func (m *MethodMux) HandleDefault(h MethodHandler) {
	m.mu.Lock()
	m.fallback = h
	m.mu.Unlock()
}

// ServeMethod dispatches req to the handler registered for its name.
func (m *MethodMux) ServeMethod(ctx context.Context, req *MethodRequest) (*MethodResponse, error) {
	m.mu.RLock()
	h, ok := m.handlers[req.Name]
	if !ok {
		h = m.fallback
	}
	m.mu.RUnlock()
	if h == nil {
		return nil, notImplemented(req.Name)
	}
	return h.ServeMethod(ctx, req)
}

func notImplemented(name string) *MethodError {
	body, _ := json.Marshal(struct {
		Error  string `json:"error"`
		Method string `json:"method"`
	}{"method not implemented", name}) // strings always encode
	return &MethodError{Status: StatusNotImplemented, Message: "method not implemented: " + name, Payload: body}
}
