package approvallink

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/token"
)

// TestFileKeys: the key is created once, 0600, and every FileKeys of the
// same path (another process, a restart) reads the same key.
func TestFileKeys(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "approval-link.key")
	first := FileKeys(path)
	tok := mint(t, testMinter(first), testGrant, "alice@example.com")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode %v, want 0600", got)
	}
	kid1, key1, err := first.SigningKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(key1) != 32 {
		t.Errorf("key of %d bytes, want 32", len(key1))
	}
	second := FileKeys(path) // a new process
	kid2, key2, err := second.SigningKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]any{kid1, key1}, []any{kid2, key2}); diff != "" {
		t.Errorf("second instance's key (-first +second):\n%s", diff)
	}
	v, err := NewVerifier(second, testIss, testAud, clock.NewManual(testNow))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), tok, testGrant); err != nil {
		t.Errorf("a link minted by the first instance: %v", err)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil || len(entries) != 1 {
		t.Errorf("directory holds %v (%v), want the key file alone", entries, err)
	}

	// A new key (the file deleted) refuses old links as of an unknown key.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), tok, testGrant); !errors.Is(err, ErrInvalid) || !errors.Is(err, token.ErrUnknownKey) {
		t.Errorf("a link of a deleted key: %v, want ErrInvalid of an unknown key", err)
	}
}

// TestFileKeysRace: processes creating the key at once agree on one.
func TestFileKeysRace(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key")
	const n = 8
	keys := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, keys[i], errs[i] = FileKeys(path).SigningKey(context.Background()) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("SigningKey %d: %v", i, errs[i])
		}
		if string(keys[i]) != string(keys[0]) {
			t.Errorf("SigningKey %d gave another key than 0", i)
		}
	}
}

func TestFileKeysRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{name: "readable by others", data: testSecret, mode: 0o644},
		{name: "readable by the group", data: testSecret, mode: 0o640},
		{name: "too short", data: testSecret[:31], mode: 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(path, tt.data, tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil { // past the umask
				t.Fatal(err)
			}
			if _, err := FileKeys(path).VerifyingKeys(t.Context()); err == nil {
				t.Error("VerifyingKeys accepted the file")
			}
		})
	}
	if _, _, err := FileKeys(filepath.Join(t.TempDir(), "no", "such", "dir")).SigningKey(t.Context()); err == nil {
		t.Error("a key was created in a directory that does not exist")
	}
}

func smKeys(f *smFake, c clock.Clock) *SecretManagerKeys {
	return &SecretManagerKeys{Client: f, Secret: "projects/acme-jit/secrets/approval-links", Clock: c}
}

func key32(b byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = b
	}
	return k
}

// TestSecretManagerRotation: adding a version makes it sign while the old
// one still verifies; disabling or destroying a version stops it
// verifying; each within the cache's TTL.
func TestSecretManagerRotation(t *testing.T) {
	t.Parallel()
	f := newSMFake()
	v1 := f.add(key32(1))
	clk := clock.NewManual(testNow)
	keys := smKeys(f, clk)
	m := &Minter{Keys: keys, Audience: testAud, Issuer: testIss, Clock: clk}
	v, err := NewVerifier(keys, testIss, testAud, clk)
	if err != nil {
		t.Fatal(err)
	}
	mintNow := func() string {
		t.Helper()
		tok, err := m.Mint(t.Context(), testGrant, "alice@example.com", clk.Now().Add(72*time.Hour))
		if err != nil {
			t.Fatalf("Mint: %v", err)
		}
		return tok
	}
	verify := func(tok string) error {
		_, err := v.Verify(t.Context(), tok, testGrant)
		return err
	}
	signer := func() string {
		t.Helper()
		kid, _, err := keys.SigningKey(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return kid
	}

	old := mintNow()
	if got := signer(); got != v1 {
		t.Fatalf("signing kid %q, want %q", got, v1)
	}
	v2 := f.add(key32(2))
	if got := signer(); got != v1 {
		t.Errorf("within the TTL the signing kid is %q, want the cached %q", got, v1)
	}
	if lists, _ := f.calls(); lists != 1 {
		t.Errorf("%d lists within the TTL, want 1", lists)
	}
	clk.Advance(DefaultKeysTTL)
	if got := signer(); got != v2 {
		t.Errorf("after the TTL the signing kid is %q, want the new %q", got, v2)
	}
	rotated := mintNow()
	for name, tok := range map[string]string{"old version": old, "new version": rotated} {
		if err := verify(tok); err != nil {
			t.Errorf("a link of the %s: %v", name, err)
		}
	}

	f.setState(v1, "DISABLED")
	if err := verify(old); err != nil {
		t.Errorf("within the TTL a link of the just disabled version: %v, want still good", err)
	}
	clk.Advance(DefaultKeysTTL)
	if err := verify(old); !errors.Is(err, ErrInvalid) || !errors.Is(err, token.ErrUnknownKey) {
		t.Errorf("a link of a disabled version: %v, want ErrInvalid of an unknown key", err)
	}
	if err := verify(rotated); err != nil {
		t.Errorf("a link of the enabled version: %v", err)
	}

	// Re-enabled, it verifies again; destroyed, never.
	f.setState(v1, "ENABLED")
	clk.Advance(DefaultKeysTTL)
	if err := verify(old); err != nil {
		t.Errorf("a link of a re-enabled version: %v", err)
	}
	f.setState(v1, "DESTROYED")
	clk.Advance(DefaultKeysTTL)
	if err := verify(old); !errors.Is(err, ErrInvalid) {
		t.Errorf("a link of a destroyed version: %v, want ErrInvalid", err)
	}
	// The fake refuses access to versions not enabled, as the service
	// does: had the keys asked for one, a load would have failed.
	if _, err := f.AccessSecretVersion(t.Context(), "projects/acme-jit/secrets/approval-links/versions/1"); err == nil {
		t.Error("the fake gave the payload of a destroyed version")
	}
}

// TestSecretManagerNewVersionSeenAtOnce: a link signed by another instance
// with a version added after this one cached the keys verifies at once;
// made-up kids cost at most one refresh per MinRefresh.
func TestSecretManagerNewVersionSeenAtOnce(t *testing.T) {
	t.Parallel()
	f := newSMFake()
	f.add(key32(1))
	clk := clock.NewManual(testNow)
	verifying := smKeys(f, clk)
	v, err := NewVerifier(verifying, testIss, testAud, clk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifying.VerifyingKeys(t.Context()); err != nil { // cache v1
		t.Fatal(err)
	}
	f.add(key32(2))
	clk.Advance(DefaultMinRefresh)
	tok := mint(t, &Minter{Keys: smKeys(f, clk), Audience: testAud, Issuer: testIss, Clock: clk}, testGrant, "alice@example.com")
	if _, err := v.Verify(t.Context(), tok, testGrant); err != nil {
		t.Fatalf("a link of a version added since the cache: %v", err)
	}
	before, _ := f.calls()
	forged := sign(sha256.New, key32(9), `{"alg":"HS256","kid":"99","typ":"JWT"}`, claimsJSON(""))
	for range 5 {
		if _, err := v.Verify(t.Context(), forged, testGrant); !errors.Is(err, ErrInvalid) {
			t.Fatalf("a made-up kid: %v, want ErrInvalid", err)
		}
	}
	if after, _ := f.calls(); after != before {
		t.Errorf("%d lists for made-up kids within MinRefresh, want 0", after-before)
	}
}

func TestSecretManagerRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(*smFake, *SecretManagerKeys)
	}{
		{name: "no versions", setup: func(*smFake, *SecretManagerKeys) {}},
		{name: "no enabled version", setup: func(f *smFake, _ *SecretManagerKeys) { f.setState(f.add(key32(1)), "DISABLED") }},
		{name: "short key", setup: func(f *smFake, _ *SecretManagerKeys) { f.add(key32(1)); f.add([]byte("short")) }},
		{name: "CRC mismatch", setup: func(f *smFake, _ *SecretManagerKeys) { f.add(key32(1)); f.badCRC = true }},
		{name: "unknown secret", setup: func(f *smFake, k *SecretManagerKeys) { f.add(key32(1)); k.Secret = "projects/acme-jit/secrets/other" }},
		{name: "a version, not a secret", setup: func(f *smFake, k *SecretManagerKeys) { f.add(key32(1)); k.Secret += "/versions/1" }},
		{name: "no client", setup: func(f *smFake, k *SecretManagerKeys) { k.Client = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newSMFake()
			k := smKeys(f, clock.NewManual(testNow))
			tt.setup(f, k)
			if _, _, err := k.SigningKey(t.Context()); err == nil {
				t.Error("SigningKey succeeded")
			}
			if _, err := k.VerifyingKeys(t.Context()); err == nil {
				t.Error("VerifyingKeys succeeded")
			}
		})
	}
}
