package auth

// This file: where verification keys come from. Google rotates both key
// sets and says how long to cache them with Cache-Control max-age; a key id
// we have not seen may be a new key published since our last fetch, so we
// refetch then, but at most once per MinFetchInterval, so that a stream of
// tokens with made-up key ids cannot turn us into a load generator.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	defaultRefresh  = time.Hour        // cache lifetime when the server sends no max-age
	defaultMinFetch = 30 * time.Second // at most one fetch per this, whatever happens
	maxKeyTTL       = 24 * time.Hour   // cap on a max-age, against a misconfigured server
	maxKeysBytes    = 1 << 20
	fetchTimeout    = 10 * time.Second // when the caller gives no HTTP client
)

// keySet maps key ids to public keys.
type keySet map[string]crypto.PublicKey

// keySourceConfig says where a verifier's public keys come from: exactly
// one of KeysURL, KeysFile and KeysJSON.
type keySourceConfig struct {
	KeysURL  string // fetched with HTTPClient, cached per Cache-Control max-age
	KeysFile string // read at start (missing or garbled: refuse to start), reread every RefreshInterval
	KeysJSON []byte // fixed keys, e.g. localoidc.Signer.JWKS()

	HTTPClient *http.Client // default: a client with a 10 s timeout

	// RefreshInterval is how long keys are kept when the server sends no
	// max-age (default 1 h), and how often a key file is reread.
	RefreshInterval time.Duration
	// MinFetchInterval is the least time between two fetches, successful
	// or not (default 30 s). It is also the shortest time keys are cached.
	MinFetchInterval time.Duration
}

func (c keySourceConfig) validate() []error {
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
	if c.RefreshInterval < 0 || c.MinFetchInterval < 0 {
		errs = append(errs, errors.New("RefreshInterval and MinFetchInterval must not be negative"))
	}
	return errs
}

// keySource caches one key set.
type keySource struct {
	cfg   keySourceConfig
	now   func() time.Time
	parse func([]byte) (keySet, error)

	mu      sync.Mutex
	keys    keySet
	expires time.Time
	lastTry time.Time // zero: never fetched
}

func newKeySource(cfg keySourceConfig, now func() time.Time, parse func([]byte) (keySet, error)) (*keySource, error) {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: fetchTimeout}
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = defaultRefresh
	}
	if cfg.MinFetchInterval == 0 {
		cfg.MinFetchInterval = defaultMinFetch
	}
	s := &keySource{cfg: cfg, now: now, parse: parse}
	switch {
	case len(cfg.KeysJSON) > 0:
		keys, err := parse(cfg.KeysJSON)
		if err != nil {
			return nil, fmt.Errorf("failed to parse KeysJSON: %w", err)
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
func (s *keySource) key(ctx context.Context, kid string) (crypto.PublicKey, error) {
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
			return nil, fmt.Errorf("%w: the last fetch failed; next attempt after %s", ErrKeysUnusable, s.lastTry.Add(s.cfg.MinFetchInterval).Format(time.RFC3339))
		}
		return nil, fmt.Errorf("%w: kid %.40q", ErrUnknownKey, kid)
	}
	s.lastTry = now
	if err := s.load(ctx, now); err != nil {
		if fresh {
			// The cached keys stay good; this kid is simply not among them.
			return nil, fmt.Errorf("%w: kid %.40q (refetch failed: %v)", ErrUnknownKey, kid, err)
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
func (s *keySource) load(ctx context.Context, now time.Time) error {
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
		return fmt.Errorf("%w: failed to parse the keys: %w", ErrKeysUnusable, err)
	}
	s.keys, s.expires = keys, now.Add(max(ttl, s.cfg.MinFetchInterval))
	return nil
}

// fetch GETs the key URL and returns the body and the max-age (-1 if none).
func (s *keySource) fetch(ctx context.Context) ([]byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.KeysURL, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("failed to build the key request: %w", err)
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("failed to fetch the keys: %w", err)
	}
	defer resp.Body.Close()
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

// jwk is one JSON Web Key, with the members we use.
type jwk struct {
	Kty string `json:"kty"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Kid string `json:"kid"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// parseJWKS decodes {"keys": [...]}, keeping the keys conv accepts (conv
// returns nil, nil for a key of another type, which is skipped).
func parseJWKS(data []byte, conv func(jwk) (crypto.PublicKey, error)) (keySet, error) {
	if err := checkObject(data); err != nil {
		return nil, err
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, err
	}
	keys := keySet{}
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pub, err := conv(k)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if pub == nil {
			continue
		}
		if k.Kid == "" {
			return nil, fmt.Errorf("key %d: no kid", i)
		}
		if _, dup := keys[k.Kid]; dup {
			return nil, fmt.Errorf("key id %q appears twice", k.Kid)
		}
		keys[k.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable keys")
	}
	return keys, nil
}

// parseECKeys reads IAP's keys in either published form: the JWKS of
// https://www.gstatic.com/iap/verify/public_key-jwk, or the kid → PEM map
// of https://www.gstatic.com/iap/verify/public_key (gcp-facts §7). Only
// P-256 keys are kept: IAP signs with ES256.
func parseECKeys(data []byte) (keySet, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, err
	}
	if _, ok := probe["keys"]; ok {
		return parseJWKS(data, ecFromJWK)
	}
	if err := checkObject(data); err != nil {
		return nil, err
	}
	keys := keySet{}
	for kid, raw := range probe {
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
		ec, ok := pub.(*ecdsa.PublicKey)
		if !ok || ec.Curve != elliptic.P256() {
			return nil, fmt.Errorf("key %q: not a P-256 key", kid)
		}
		keys[kid] = ec
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable keys")
	}
	return keys, nil
}

func ecFromJWK(k jwk) (crypto.PublicKey, error) {
	if k.Kty != "EC" || k.Crv != "P-256" {
		return nil, nil
	}
	if k.Alg != "" && k.Alg != "ES256" {
		return nil, nil
	}
	x, errX := decodeSegment(k.X)
	y, errY := decodeSegment(k.Y)
	if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
		return nil, errors.New("x and y must be 32-byte base64url values")
	}
	// ParseUncompressedPublicKey refuses points off the curve (invalid-curve attacks).
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, fmt.Errorf("bad P-256 point: %w", err)
	}
	return pub, nil
}

// parseRSAKeys reads Google's JWKS (https://www.googleapis.com/oauth2/v3/certs).
func parseRSAKeys(data []byte) (keySet, error) { return parseJWKS(data, rsaFromJWK) }

func rsaFromJWK(k jwk) (crypto.PublicKey, error) {
	if k.Kty != "RSA" || (k.Alg != "" && k.Alg != "RS256") {
		return nil, nil
	}
	n, errN := decodeSegment(k.N)
	e, errE := decodeSegment(k.E)
	if errN != nil || errE != nil {
		return nil, errors.New("n and e must be base64url values")
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n)}
	eb := new(big.Int).SetBytes(e)
	switch bits := pub.N.BitLen(); {
	case bits < 2048 || bits > 8192:
		return nil, fmt.Errorf("RSA modulus of %d bits", bits)
	case !eb.IsInt64() || eb.Int64() < 3 || eb.Int64() > 1<<31-1 || eb.Bit(0) == 0:
		return nil, errors.New("RSA exponent out of range")
	}
	pub.E = int(eb.Int64())
	return pub, nil
}
