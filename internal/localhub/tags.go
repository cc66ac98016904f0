package localhub

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
)

// Limits of a twin's tags, from "Tags and properties format" in IoT Hub's
// device twin developer guide (iot-hub-devguide-device-twins) and the tags
// section limit in iot-hub-devguide-quotas-throttling ("Maximum size of
// tags section is 8 KB").
const (
	maxTagKeyBytes    = 1024
	maxTagStringBytes = 4 * 1024
	maxTagDepth       = 10
	maxTagsBytes      = 8 * 1024
	// maxTagInteger and minTagInteger bound integers: "Integers can have a
	// minimum value of -4503599627370496 and a maximum value of
	// 4503599627370495."
	maxTagInteger int64 = 4503599627370495
	minTagInteger int64 = -4503599627370496
)

// errInvalidTags is wrapped by the errors of tag validation.
var errInvalidTags = errors.New("invalid tags")

// twinTags is one twin's tags and the version that counts its updates.
type twinTags struct {
	Tags    map[string]any `json:"tags"`
	Version int64          `json:"version"`
}

// firstTwinVersion is the version of a twin that was never updated.
const firstTwinVersion = 1

// etag is the twin's ETag: its version as 8 big-endian bytes in base64, the
// form IoT Hub's twin ETags have ("AAAAAAAAAAE=").
func (t twinTags) etag() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.Version))
	return base64.StdEncoding.EncodeToString(b[:])
}

// tagStore holds the tags of every twin, devices' and modules'. It is safe
// for concurrent use; persist, when set, runs after each change, outside
// the lock.
type tagStore struct {
	persist func()

	mu    sync.Mutex
	twins map[string]twinTags // by identity, "dev" or "dev/mod"
}

func newTagStore() *tagStore { return &tagStore{twins: map[string]twinTags{}} }

// get returns identity's tags (a copy) and version.
func (s *tagStore) get(identity string) twinTags {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.twins[identity]
	if !ok {
		return twinTags{Tags: map[string]any{}, Version: firstTwinVersion}
	}
	return twinTags{Tags: cloneTags(t.Tags), Version: t.Version}
}

// errETagMismatch reports an If-Match that names another version.
var errETagMismatch = errors.New("the etag does not match the twin's")

// update applies change to identity's tags if ifMatch is "" or "*" or the
// twin's current ETag, and returns the twin as it is after the change.
// change gets a copy it may modify and returns the new tags; the version
// counts every successful update.
func (s *tagStore) update(identity, ifMatch string, change func(map[string]any) (map[string]any, error)) (twinTags, error) {
	s.mu.Lock()
	t, ok := s.twins[identity]
	if !ok {
		t = twinTags{Tags: map[string]any{}, Version: firstTwinVersion}
	}
	if ifMatch != "" && ifMatch != "*" && ifMatch != t.etag() {
		s.mu.Unlock()
		return twinTags{}, errETagMismatch
	}
	tags, err := change(cloneTags(t.Tags))
	if err != nil {
		s.mu.Unlock()
		return twinTags{}, err
	}
	t = twinTags{Tags: tags, Version: t.Version + 1}
	s.twins[identity] = t
	out := twinTags{Tags: cloneTags(tags), Version: t.Version}
	s.mu.Unlock()
	if s.persist != nil {
		s.persist()
	}
	return out, nil
}

// snapshot returns every twin's tags, for persistence.
func (s *tagStore) snapshot() map[string]twinTags {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]twinTags, len(s.twins))
	for id, t := range s.twins {
		out[id] = twinTags{Tags: cloneTags(t.Tags), Version: t.Version}
	}
	return out
}

// restore replaces the store's content with persisted twins.
func (s *tagStore) restore(twins map[string]twinTags) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.twins = make(map[string]twinTags, len(twins))
	for id, t := range twins {
		if t.Tags == nil {
			t.Tags = map[string]any{}
		}
		s.twins[id] = t
	}
}

// cloneTags deep-copies a tags object; its values are what decodeTags
// produces: nested maps, strings, json.Number and bools.
func cloneTags(m map[string]any) map[string]any {
	out := maps.Clone(m)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range out {
		if inner, ok := v.(map[string]any); ok {
			out[k] = cloneTags(inner)
		}
	}
	return out
}

// decodeTags decodes a JSON object of tags, keeping numbers exact
// (json.Number). allowNull keeps null values, which a patch uses to remove
// a tag.
func decodeTags(raw json.RawMessage, allowNull bool) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalidTags, err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: tags must be a JSON object", errInvalidTags)
	}
	if err := validateTagObject(obj, "tags", 1, allowNull); err != nil {
		return nil, err
	}
	return obj, nil
}

// validateTagObject checks the keys and values of obj at depth (the tags
// object itself is depth 1).
func validateTagObject(obj map[string]any, path string, depth int, allowNull bool) error {
	if depth > maxTagDepth {
		return fmt.Errorf("%w: %s is nested deeper than %d levels", errInvalidTags, path, maxTagDepth)
	}
	for k, v := range obj {
		if err := validateTagKey(k); err != nil {
			return fmt.Errorf("%w: %s: %w", errInvalidTags, path, err)
		}
		at := path + "." + k
		switch v := v.(type) {
		case nil:
			if !allowNull {
				return fmt.Errorf("%w: %s is null", errInvalidTags, at)
			}
		case bool:
		case string:
			if len(v) > maxTagStringBytes {
				return fmt.Errorf("%w: %s is longer than %d bytes", errInvalidTags, at, maxTagStringBytes)
			}
		case json.Number:
			if err := validateTagNumber(v); err != nil {
				return fmt.Errorf("%w: %s: %w", errInvalidTags, at, err)
			}
		case map[string]any:
			if err := validateTagObject(v, at, depth+1, allowNull); err != nil {
				return err
			}
		default: // []any: "Arrays are not allowed."
			return fmt.Errorf("%w: %s is an array; tag values are booleans, numbers, strings or objects", errInvalidTags, at)
		}
	}
	return nil
}

// validateTagKey checks a key: at most 1 KB, and none of the Unicode
// control characters (C0 and C1), '.', '$' and space.
func validateTagKey(k string) error {
	switch {
	case k == "":
		return errors.New("a key is empty")
	case len(k) > maxTagKeyBytes:
		return fmt.Errorf("a key is longer than %d bytes", maxTagKeyBytes)
	}
	for _, r := range k {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == '.' || r == '$' || r == ' ' {
			return fmt.Errorf("the key %q has the character %q, which keys may not have", clip(k), r)
		}
	}
	return nil
}

// validateTagNumber checks that an integer is within IoT Hub's range; other
// numbers only need to be finite, which JSON numbers are.
func validateTagNumber(n json.Number) error {
	i, err := n.Int64()
	if err != nil {
		if _, ferr := n.Float64(); ferr != nil {
			return fmt.Errorf("%s is out of range", n)
		}
		if isIntegerLiteral(n.String()) {
			return fmt.Errorf("the integer %s is out of range [%d, %d]", n, minTagInteger, maxTagInteger)
		}
		return nil
	}
	if i > maxTagInteger || i < minTagInteger {
		return fmt.Errorf("the integer %s is out of range [%d, %d]", n, minTagInteger, maxTagInteger)
	}
	return nil
}

// isIntegerLiteral reports whether a JSON number has neither fraction nor
// exponent.
func isIntegerLiteral(s string) bool {
	return !bytes.ContainsAny([]byte(s), ".eE")
}

// mergeTags applies a JSON merge patch (RFC 7386) to tags: null removes a
// key, an object merges into an object, anything else replaces.
func mergeTags(tags, patch map[string]any) map[string]any {
	for k, v := range patch {
		switch v := v.(type) {
		case nil:
			delete(tags, k)
		case map[string]any:
			if old, ok := tags[k].(map[string]any); ok {
				tags[k] = mergeTags(old, v)
			} else {
				tags[k] = mergeTags(map[string]any{}, v)
			}
		default:
			tags[k] = v
		}
	}
	return tags
}

// checkTagsSize refuses a tags section larger than IoT Hub allows.
func checkTagsSize(tags map[string]any) error {
	b, err := json.Marshal(tags)
	if err != nil {
		return fmt.Errorf("%w: %w", errInvalidTags, err)
	}
	if len(b) > maxTagsBytes {
		return fmt.Errorf("%w: the tags section would be %d bytes, more than the %d allowed", errInvalidTags, len(b), maxTagsBytes)
	}
	return nil
}
