package localhub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The hub keeps its state in Options.Dir as JSON files, each replaced
// whole through a temporary file and a rename.

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

// writeFileAtomic writes through a temporary file and a rename, so that a
// crash never leaves a half-written file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("localhub: write %s: %w", filepath.Base(path), err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("localhub: write %s: %w", filepath.Base(path), err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("localhub: write %s: %w", filepath.Base(path), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("localhub: write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("localhub: write %s: %w", filepath.Base(path), err)
	}
	return nil
}
