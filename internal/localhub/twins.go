package localhub

import (
	"sync"
	"time"
)

// twinStates holds what the hub learns of each identity from its
// connections, for the twin and digital twin APIs: the IoT Plug and Play
// model ID it announced and when it was last active. Its zero value is
// ready to use; it is safe for concurrent use.
type twinStates struct {
	mu     sync.Mutex
	states map[string]twinState // by identity, "dev" or "dev/mod"
}

// twinState is one identity's entry.
type twinState struct {
	// modelID is the model ID the identity's latest connection announced
	// (MQTT username model-id, AMQP link property com.microsoft:model-id);
	// "" when it announced none. A device sets its model ID only when it
	// connects ("IoT Plug and Play device developer guide", Model ID
	// announcement).
	modelID string
	// lastActivity is when the identity last connected or answered a
	// method; zero when never.
	lastActivity time.Time
}

// connected records a connection of identity and the model ID it
// announced.
func (t *twinStates) connected(identity, modelID string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.states == nil {
		t.states = map[string]twinState{}
	}
	t.states[identity] = twinState{modelID: modelID, lastActivity: now}
}

// active records that identity answered a method at now.
func (t *twinStates) active(identity string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.states[identity]; ok {
		s.lastActivity = now
		t.states[identity] = s
	}
}

// get returns identity's entry; the zero twinState when it never connected.
func (t *twinStates) get(identity string) twinState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.states[identity]
}
