package approvallink

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/jitpipeline/jit/internal/token"
)

// keyBytes is the length of a generated key: HS256's hash output, the
// least RFC 7518 §3.2 allows.
const keyBytes = 32

// FileKeys is the local key: one random secret in the file at this path,
// created on first use (mode 0600) and read on every use after, so every
// process of a local run sharing the data directory shares it, and links
// survive restarts. Its kid is derived from the key, so links signed with
// a key since deleted are refused as signed with an unknown key.
type FileKeys string

var _ Keys = FileKeys("")

// SigningKey reads (or creates) the key.
func (f FileKeys) SigningKey(context.Context) (string, []byte, error) {
	key, err := f.load()
	if err != nil {
		return "", nil, err
	}
	return kidOf(key), key, nil
}

// VerifyingKeys is the one key.
func (f FileKeys) VerifyingKeys(context.Context) (map[string][]byte, error) {
	key, err := f.load()
	if err != nil {
		return nil, err
	}
	return map[string][]byte{kidOf(key): key}, nil
}

func kidOf(key []byte) string {
	sum := sha256.Sum256(key)
	return "file-" + hex.EncodeToString(sum[:8])
}

func (f FileKeys) load() ([]byte, error) {
	path := string(f)
	if path == "" {
		return nil, errors.New("approval link key file: no path")
	}
	key, err := readKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createKey(path); err != nil {
			return nil, err
		}
		key, err = readKey(path)
	}
	return key, err
}

func readKey(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("approval link key file: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		// Whoever can read it can mint links: refuse, as ssh does.
		return nil, fmt.Errorf("approval link key file %s: mode %v, want 0600", path, info.Mode().Perm())
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("approval link key file: %w", err)
	}
	if len(key) < token.MinSecretBytes {
		return nil, fmt.Errorf("approval link key file %s: %d bytes, want at least %d", path, len(key), token.MinSecretBytes)
	}
	return key, nil
}

// createKey writes a new key to a temporary file and links it into place:
// the key appears whole or not at all, and when two processes race the
// first link wins and the other's key is dropped (a rename would replace a
// key already used to sign).
func createKey(path string) error {
	key := make([]byte, keyBytes)
	_, _ = rand.Read(key) // never fails (crypto/rand)
	// CreateTemp makes the file 0600, in the same directory so it can be
	// linked into place.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".approval-link-key-*")
	if err != nil {
		return fmt.Errorf("failed to create the approval link key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(key)
	if err == nil {
		err = tmp.Sync()
	}
	if errClose := tmp.Close(); err == nil {
		err = errClose
	}
	if err != nil {
		return fmt.Errorf("failed to write the approval link key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("failed to create the approval link key: %w", err)
	}
	return nil
}
