package token

// This file: where verification keys come from. Google rotates both key
// sets and says how long to cache them with Cache-Control max-age; a key id
// we have not seen may be a new key published since our last fetch, so we
// refetch then, but at most once per MinFetchInterval, so that a stream of
// tokens with made-up key ids cannot turn us into a load generator.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/jitpipeline/jit/internal/jsonstrict"
)

const (
	defaultRefresh  = time.Hour        // cache lifetime when the server sends no max-age
	defaultMinFetch = 30 * time.Second // at most one fetch per this, whatever happens
	maxKeyTTL       = 24 * time.Hour   // cap on a max-age, against a misconfigured server
	maxKeysBytes    = 1 << 20
	// FetchTimeout bounds a key fetch when the caller gives no HTTP client.
	FetchTimeout = 10 * time.Second
)

// keySet maps key ids to public keys.
type keySet map[string]any

// KeySetConfig says where a verifier's public keys come from: exactly
// one of KeysURL, KeysFile and KeysJSON.
type KeySetConfig struct {
	KeysURL  string // fetched with HTTPClient, cached per Cache-Control max-age
	KeysFile string // read at start (missing or garbled: refuse to start), reread every RefreshInterval
	KeysJSON []byte // fixed keys, e.g. localoidc.Signer.JWKS()

	HTTPClient *http.Client // default: a client with a 10 s timeout

	// Algorithms keeps only the keys that verify these (RS256: RSA keys,
	// ES256: P-256 keys); a set with none of them is unusable. Required.
	Algorithms []jose.SignatureAlgorithm

	// RefreshInterval is how long keys are kept when the server sends no
	// max-age (default 1 h), and how often a key file is reread.
	RefreshInterval time.Duration
	// MinFetchInterval is the least time between two fetches, successful
	// or not (default 30 s). It is also the shortest time keys are cached.
	MinFetchInterval time.Duration
}

func (c KeySetConfig) Validate() []error {
	var errs []error
	n := 0
	for _, set := range []bool{c.KeysURL != "", c.KeysFile != "", len(c.KeysJSON) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		errs = append(errs, fmt.Errorf("exactly one of KeysURL, KeysFile and KeysJSON must be set (%d are)", n))
	}
	if c.KeysURL != "" && !strings.HasPrefix(c.KeysURL, "https://") && !strings.HasPrefix(c.KeysURL, "http://") {
		errs = append(errs, fmt.Errorf("KeysURL %q is not an http(s) URL", c.KeysURL))
	}
	if len(c.Algorithms) == 0 {
		errs = append(errs, errors.New("Algorithms is required"))
	}
	if c.RefreshInterval < 0 || c.MinFetchInterval < 0 {
		errs = append(errs, errors.New("RefreshInterval and MinFetchInterval must not be negative"))
	}
	return errs
}

// KeySet is the one cached JWKS fetcher: one key set, from a URL, a file
// or fixed JSON.
type KeySet struct {
	cfg   KeySetConfig
	now   func() time.Time
	parse func([]byte) (keySet, error)

	mu      sync.Mutex
	keys    keySet
	expires time.Time
	lastTry time.Time // zero: never fetched
	lastErr error     // why the last fetch failed, nil if it did not
}

// NewKeySet returns the key set cfg describes; now nil means time.Now. Fixed
// keys and a key file are read at once: a server that cannot read its keys
// must not start.
func NewKeySet(cfg KeySetConfig, now func() time.Time) (*KeySet, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if now == nil {
		now = time.Now
	}
	parse := func(data []byte) (keySet, error) { return parseKeys(data, cfg.Algorithms) }
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: FetchTimeout}
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = defaultRefresh
	}
	if cfg.MinFetchInterval == 0 {
		cfg.MinFetchInterval = defaultMinFetch
	}
	s := &KeySet{cfg: cfg, now: now, parse: parse}
	switch {
	case len(cfg.KeysJSON) > 0:
		keys, err := parse(cfg.KeysJSON)
		if err != nil {
			return nil, fmt.Errorf("failed to parse KeysJSON: %w: %w", ErrKeysInvalid, err)
		}
		s.keys, s.expires = keys, time.Unix(1<<62, 0) // fixed keys never expire
	case cfg.KeysFile != "":
		// A server that cannot read its key file must not start.
		now := s.now()
		s.lastTry = now
		if err := s.load(context.Background(), now); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// key returns the key with id kid, fetching when the cache is stale or the
// kid unknown, at most once per MinFetchInterval.
func (s *KeySet) Key(ctx context.Context, kid string) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	fresh := s.keys != nil && now.Before(s.expires)
	if k, ok := s.keys[kid]; ok && fresh {
		return k, nil
	}
	if len(s.cfg.KeysJSON) > 0 {
		return nil, fmt.Errorf("%w: kid %.40q", ErrUnknownKey, kid)
	}
	if !s.lastTry.IsZero() && now.Sub(s.lastTry) < s.cfg.MinFetchInterval {
		if !fresh {
			// The last fetch failed; its error stands until the next, so
			// a 404 (ErrNoKeys) stays an answer while we wait.
			last := s.lastErr
			if last == nil {
				last = ErrKeysUnusable // only if the clock went back
			}
			return nil, fmt.Errorf("%w (next attempt after %s)", last, s.lastTry.Add(s.cfg.MinFetchInterval).Format(time.RFC3339))
		}
		return nil, fmt.Errorf("%w: kid %.40q", ErrUnknownKey, kid)
	}
	s.lastTry = now
	err := s.load(ctx, now)
	s.lastErr = err
	if err != nil {
		if fresh {
			// The cached keys stay good and this kid is not among them,
			// but it may be a new key we could not fetch: the error wraps
			// both, and the caller decides whether to wait.
			return nil, fmt.Errorf("%w: kid %.40q (refetch failed: %w)", ErrUnknownKey, kid, err)
		}
		return nil, err
	}
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w: kid %.40q", ErrUnknownKey, kid)
}

// load fetches or reads the key set and replaces the cache. On failure the
// cache is left as it was (and expires when it expires).
func (s *KeySet) load(ctx context.Context, now time.Time) error {
	var data []byte
	ttl := s.cfg.RefreshInterval
	if s.cfg.KeysFile != "" {
		b, err := os.ReadFile(s.cfg.KeysFile)
		if err != nil {
			return fmt.Errorf("%w: failed to read the key file: %w", ErrKeysUnusable, err)
		}
		data = b
	} else {
		b, maxAge, err := s.fetch(ctx)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrKeysUnusable, err)
		}
		data = b
		if maxAge >= 0 {
			ttl = min(maxAge, maxKeyTTL)
		}
	}
	keys, err := s.parse(data)
	if err != nil {
		return fmt.Errorf("%w: %w: %w", ErrKeysUnusable, ErrKeysInvalid, err)
	}
	s.keys, s.expires = keys, now.Add(max(ttl, s.cfg.MinFetchInterval))
	return nil
}

// fetch GETs the key URL and returns the body and the max-age (-1 if none).
func (s *KeySet) fetch(ctx context.Context) ([]byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.KeysURL, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("failed to build the key request: %w", err)
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("failed to fetch the keys: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, 0, ErrNoKeys
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("failed to fetch the keys: HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeysBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("failed to read the keys: %w", err)
	}
	if len(body) > maxKeysBytes {
		return nil, 0, fmt.Errorf("failed to read the keys: more than %d bytes", maxKeysBytes)
	}
	return body, maxAge(resp.Header.Get("Cache-Control")), nil
}

// maxAge reads max-age from a Cache-Control header, -1 if absent or bad.
func maxAge(cc string) time.Duration {
	for d := range strings.SplitSeq(cc, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(d), "=")
		if !ok || !strings.EqualFold(name, "max-age") {
			continue
		}
		n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
		if err != nil || n < 0 {
			return -1
		}
		return time.Duration(min(n, int64(maxKeyTTL/time.Second))) * time.Second
	}
	return -1
}

// parseKeys reads a key set in either form Google publishes: a JWKS
// ({"keys": [...]}: https://www.googleapis.com/oauth2/v3/certs, IAP's
// https://www.gstatic.com/iap/verify/public_key-jwk, a service account's
// .../service_accounts/v1/metadata/jwk/EMAIL), or IAP's kid → PEM map
// (https://www.gstatic.com/iap/verify/public_key). JWKs are decoded by
// go-jose; we keep the signing keys we can use: RSA of 2048 to 8192 bits
// (alg absent or RS256) and P-256 EC (alg absent or ES256). Keys of other
// types are skipped; a usable key without a kid, or a kid twice, refuses
// the whole set.
func parseKeys(data []byte, algs []jose.SignatureAlgorithm) (keySet, error) {
	var top map[string]json.RawMessage
	if err := jsonstrict.Unmarshal(data, &top); err != nil {
		return nil, err
	}
	if raw, ok := top["keys"]; ok {
		return parseJWKS(raw, algs)
	}
	keys := keySet{}
	for kid, raw := range top {
		var text string
		if err := json.Unmarshal(raw, &text); err != nil {
			return nil, fmt.Errorf("key %q: not a PEM string", kid)
		}
		block, rest := pem.Decode([]byte(text))
		if block == nil || block.Type != "PUBLIC KEY" || strings.TrimSpace(string(rest)) != "" {
			return nil, fmt.Errorf("key %q: not one PEM public key", kid)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", kid, err)
		}
		if err := usable(pub); err != nil {
			return nil, fmt.Errorf("key %q: %w", kid, err)
		}
		if !verifies(pub, algs) {
			continue
		}
		keys[kid] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable keys")
	}
	return keys, nil
}

func parseJWKS(raw json.RawMessage, algs []jose.SignatureAlgorithm) (keySet, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New("keys is not an array")
	}
	keys := keySet{}
	for i, item := range list {
		var head struct {
			Kty, Alg, Use, Kid string
		}
		if err := jsonstrict.Unmarshal(item, &map[string]json.RawMessage{}); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if err := json.Unmarshal(item, &head); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		switch {
		case head.Use != "" && head.Use != "sig":
			continue
		case head.Kty == "RSA" && (head.Alg == "" || head.Alg == string(jose.RS256)):
		case head.Kty == "EC" && (head.Alg == "" || head.Alg == string(jose.ES256)):
		default:
			continue // not a kind of key this project verifies with
		}
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(item); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if !k.Valid() || !k.IsPublic() {
			return nil, fmt.Errorf("key %d: not a valid public key", i)
		}
		if err := usable(k.Key); err != nil {
			if errors.Is(err, errOtherCurve) {
				continue
			}
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if !verifies(k.Key, algs) {
			continue
		}
		if k.KeyID == "" {
			return nil, fmt.Errorf("key %d: no kid", i)
		}
		if _, dup := keys[k.KeyID]; dup {
			return nil, fmt.Errorf("key id %q appears twice", k.KeyID)
		}
		keys[k.KeyID] = k.Key
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable keys")
	}
	return keys, nil
}

var errOtherCurve = errors.New("not a P-256 key")

// verifies reports whether pub verifies one of algs.
func verifies(pub any, algs []jose.SignatureAlgorithm) bool {
	switch pub.(type) {
	case *rsa.PublicKey:
		return slices.Contains(algs, jose.RS256)
	case *ecdsa.PublicKey:
		return slices.Contains(algs, jose.ES256)
	}
	return false
}

// usable accepts the public keys this project verifies with.
func usable(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 || bits > 8192 {
			return fmt.Errorf("RSA modulus of %d bits", bits)
		}
		if k.E < 3 || k.E%2 == 0 || k.E > 1<<31-1 {
			// crypto/rsa verifies with no larger exponent anyway.
			return errors.New("RSA exponent out of range")
		}
		return nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return errOtherCurve
		}
		return nil
	}
	return fmt.Errorf("a %T is not a signing key this project verifies with", pub)
}
