package localhub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// The service side's state kept in Options.Dir next to state.json: the
// twins' tags in twins.json, written at every change before the update is
// answered.
const twinsFileName = "twins.json"

// persistedTwins is the content of twins.json.
type persistedTwins struct {
	Twins map[string]twinTags `json:"twins"`
}

// serviceFiles writes twins.json. Its mutex serialises the writes; each
// write takes its snapshot under it, so the last write holds the newest
// state.
type serviceFiles struct {
	dir string
	mu  sync.Mutex
}

// initService creates the tag store and the throttles of tier, loading
// the store from dir when it is set.
func (h *Hub) initService(dir string, tier Tier) error {
	if err := tier.validate(); err != nil {
		return err
	}
	h.throttle = newThrottles(tier)
	h.tags = newTagStore()
	if dir == "" {
		return nil
	}
	h.files = &serviceFiles{dir: dir}
	var twins persistedTwins
	if err := readJSONFile(filepath.Join(dir, twinsFileName), &twins); err != nil {
		return err
	}
	h.tags.restore(twins.Twins)
	h.tags.persist = func() {
		if err := h.saveTwins(); err != nil {
			h.log.Error("localhub: saving twins failed", "err", err)
		}
	}
	return nil
}

// readJSONFile decodes path into v; a file that does not exist leaves v
// as it is.
func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("localhub: read %s: %w", filepath.Base(path), err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("localhub: parse %s: %w", filepath.Base(path), err)
	}
	return nil
}

// saveTwins writes twins.json.
func (h *Hub) saveTwins() error {
	h.files.mu.Lock()
	defer h.files.mu.Unlock()
	b, err := json.MarshalIndent(persistedTwins{Twins: h.tags.snapshot()}, "", "  ")
	if err != nil {
		return fmt.Errorf("localhub: encode twins: %w", err)
	}
	return writeFileAtomic(filepath.Join(h.files.dir, twinsFileName), b, 0o600)
}
