package localhub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// readJSONFile decodes the JSON file at path into v. It reports false,
// and no error, when the file does not exist yet.
func readJSONFile(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("localhub: read %s: %w", filepath.Base(path), err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("localhub: parse %s: %w", filepath.Base(path), err)
	}
	return true, nil
}

// writeJSONFile writes v as indented JSON to path, atomically and with
// perm, creating the directory (mode 0700) if needed.
func writeJSONFile(path string, v any, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("localhub: create state directory: %w", err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("localhub: encode %s: %w", filepath.Base(path), err)
	}
	return writeFileAtomic(path, b, perm)
}
