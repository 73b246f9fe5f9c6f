package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// maxDocumentSize bounds what a loader reads. A policy is kilobytes (Secret
// Manager caps payloads at 64 KiB); anything near this is a mistake, and
// reading it whole every TTL would hurt.
const maxDocumentSize = 8 << 20

var (
	_ Loader = (*FileLoader)(nil)
	_ Loader = (*SecretManagerLoader)(nil)
	_ Loader = (*StorageLoader)(nil)
)

// FileLoader reads the policy from a local file (local mode). Its version is
// the modification time plus a SHA-256 prefix of the content, so an edit is
// seen even when it lands within the same mtime tick, and a version names its
// content.
type FileLoader struct {
	Path string
}

// NewFileLoader returns a FileLoader for path.
func NewFileLoader(path string) (*FileLoader, error) {
	if path == "" {
		return nil, errors.New("policy file path is empty")
	}
	return &FileLoader{Path: path}, nil
}

// Load reads the file. The mtime comes from the open handle, so it belongs to
// the same file as the content even if the path is replaced meanwhile.
func (l *FileLoader) Load(ctx context.Context) ([]byte, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("failed to read %s: %w", l.Path, err)
	}
	f, err := os.Open(l.Path)
	if err != nil {
		return nil, "", fmt.Errorf("failed to open policy file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("failed to stat policy file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, "", fmt.Errorf("policy file %s is not a regular file", l.Path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxDocumentSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("failed to read policy file %s: %w", l.Path, err)
	}
	if len(data) > maxDocumentSize {
		return nil, "", fmt.Errorf("policy file %s is larger than %d bytes", l.Path, maxDocumentSize)
	}
	sum := sha256.Sum256(data)
	version := info.ModTime().UTC().Format(time.RFC3339Nano) + "-" + hex.EncodeToString(sum[:8])
	return data, version, nil
}

// String names the location in logs.
func (l *FileLoader) String() string { return "file:" + l.Path }
