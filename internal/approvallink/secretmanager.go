package approvallink

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/api/option"
	secretmanager "google.golang.org/api/secretmanager/v1"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/token"
)

// Defaults of SecretManagerKeys.
const (
	// DefaultKeysTTL is how long keys are kept: a version disabled stops
	// verifying, and one added starts signing, within it.
	DefaultKeysTTL = 5 * time.Minute
	// DefaultMinRefresh is the least time between two refreshes forced
	// by an unknown kid, so made-up kids cannot make us call the API.
	DefaultMinRefresh = 30 * time.Second
)

// SecretManagerClient is the part of Secret Manager the keys use, shaped
// after its ListSecretVersions and AccessSecretVersion methods.
// NewSecretManagerClient returns the real one (the REST client the policy
// loader uses too, so the deployed code links one Secret Manager client).
type SecretManagerClient interface {
	// ListSecretVersions returns every version of the secret
	// (projects/P/secrets/S), all pages, in any state.
	ListSecretVersions(ctx context.Context, secret string) ([]*secretmanager.SecretVersion, error)
	// AccessSecretVersion returns the payload of the version
	// (projects/P/secrets/S/versions/N).
	AccessSecretVersion(ctx context.Context, version string) (*secretmanager.AccessSecretVersionResponse, error)
}

// SecretManagerKeys are the keys on Google Cloud: the ENABLED versions of
// Secret, each a key of at least 32 bytes, kid its version number; the
// highest-numbered one signs. Rotate by adding a version (gcloud secrets
// versions add S --data-file=<32 random bytes>); retire one by disabling
// it once the links it signed have expired. Use it by pointer.
type SecretManagerKeys struct {
	Client SecretManagerClient
	Secret string // projects/P/secrets/S
	// TTL is how long keys are cached (default DefaultKeysTTL);
	// MinRefresh bounds RefreshKeys (default DefaultMinRefresh).
	TTL, MinRefresh time.Duration
	Clock           clock.Clock // nil: the system clock

	mu      sync.Mutex // held across a load, so one load runs at a time
	set     *versionSet
	fetched time.Time
}

var (
	_ Keys      = (*SecretManagerKeys)(nil)
	_ Refresher = (*SecretManagerKeys)(nil)
)

type versionSet struct {
	signing string // kid of the highest enabled version
	keys    map[string][]byte
}

// Validate reports every problem with the keys' settings at once.
func (s *SecretManagerKeys) Validate() error {
	var errs []error
	if s.Client == nil {
		errs = append(errs, errors.New("Client is required"))
	}
	if p := strings.Split(s.Secret, "/"); len(p) != 4 || p[0] != "projects" || p[2] != "secrets" || p[1] == "" || p[3] == "" {
		errs = append(errs, fmt.Errorf("Secret %q is not of the form projects/PROJECT/secrets/SECRET", s.Secret))
	}
	if s.TTL < 0 || s.MinRefresh < 0 {
		errs = append(errs, errors.New("TTL and MinRefresh must not be negative"))
	}
	return errors.Join(errs...)
}

// SigningKey is the highest enabled version.
func (s *SecretManagerKeys) SigningKey(ctx context.Context) (string, []byte, error) {
	set, err := s.get(ctx, false)
	if err != nil {
		return "", nil, err
	}
	return set.signing, set.keys[set.signing], nil
}

// VerifyingKeys are the enabled versions.
func (s *SecretManagerKeys) VerifyingKeys(ctx context.Context) (map[string][]byte, error) {
	set, err := s.get(ctx, false)
	if err != nil {
		return nil, err
	}
	return set.keys, nil
}

// RefreshKeys reloads the keys unless they were loaded less than
// MinRefresh ago.
func (s *SecretManagerKeys) RefreshKeys(ctx context.Context) (map[string][]byte, error) {
	set, err := s.get(ctx, true)
	if err != nil {
		return nil, err
	}
	return set.keys, nil
}

func (s *SecretManagerKeys) get(ctx context.Context, refresh bool) (*versionSet, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("invalid approval link keys: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := clockOr(s.Clock).Now()
	age := now.Sub(s.fetched)
	ttl, minRefresh := orDefault(s.TTL, DefaultKeysTTL), orDefault(s.MinRefresh, DefaultMinRefresh)
	if s.set != nil && age >= 0 && (age < ttl && !refresh || refresh && age < minRefresh) {
		return s.set, nil
	}
	// A failed load leaves the cache as it was but does not extend it: a
	// version disabled must stop verifying even while the API is down.
	set, err := s.load(ctx)
	if err != nil {
		return nil, err
	}
	s.set, s.fetched = set, now
	return set, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// load lists the versions and accesses the enabled ones. Only ENABLED
// versions are accessed: access to a DISABLED or DESTROYED one fails
// (https://cloud.google.com/secret-manager/docs/disable-secret-version:
// "You won't be able to access a secret version after you have disabled
// the version"; the error is FAILED_PRECONDITION). A version disabled
// between the list and its access fails the load; the next one sees it.
func (s *SecretManagerKeys) load(ctx context.Context) (*versionSet, error) {
	versions, err := s.Client.ListSecretVersions(ctx, s.Secret)
	if err != nil {
		return nil, fmt.Errorf("failed to list the versions of %s: %w", s.Secret, err)
	}
	id := s.Secret[strings.LastIndex(s.Secret, "/")+1:]
	set := &versionSet{keys: map[string][]byte{}}
	highest := int64(0)
	for _, v := range versions {
		if v == nil || v.State != "ENABLED" {
			continue
		}
		// The API names versions by project number, the setting may use
		// the project ID: match on the secret ID.
		_, kid, ok := strings.Cut(v.Name, "/secrets/"+id+"/versions/")
		n, err := strconv.ParseInt(kid, 10, 64)
		if !ok || err != nil || n <= 0 {
			return nil, fmt.Errorf("secret %s: version %q is not a numbered version of it", s.Secret, v.Name)
		}
		key, err := s.access(ctx, s.Secret+"/versions/"+kid)
		if err != nil {
			return nil, err
		}
		set.keys[kid] = key
		if n > highest {
			highest, set.signing = n, kid
		}
	}
	if len(set.keys) == 0 {
		return nil, fmt.Errorf("secret %s has no enabled version", s.Secret)
	}
	return set, nil
}

// access returns the key in version, checked: a CRC32C mismatch means the
// bytes are not the ones stored; a short key is refused whole rather than
// signed with.
func (s *SecretManagerKeys) access(ctx context.Context, version string) ([]byte, error) {
	resp, err := s.Client.AccessSecretVersion(ctx, version)
	if err != nil {
		return nil, fmt.Errorf("failed to access %s: %w", version, err)
	}
	if resp == nil || resp.Payload == nil {
		return nil, fmt.Errorf("secret version %s: response has no payload", version)
	}
	key, err := base64.StdEncoding.DecodeString(resp.Payload.Data)
	if err != nil {
		return nil, fmt.Errorf("secret version %s: failed to decode the payload: %w", version, err)
	}
	// Zero counts as absent: the generated struct cannot tell them apart.
	if want := resp.Payload.DataCrc32c; want != 0 && int64(crc32.Checksum(key, castagnoli)) != want {
		return nil, fmt.Errorf("secret version %s: payload CRC32C mismatch", version)
	}
	if len(key) < token.MinSecretBytes {
		return nil, fmt.Errorf("secret version %s: a key of %d bytes, want at least %d", version, len(key), token.MinSecretBytes)
	}
	return key, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// NewSecretManagerClient returns the Secret Manager REST client as a
// SecretManagerClient. opts reach the client (option.WithEndpoint and
// option.WithoutAuthentication aim it at a fake); ctx may be kept for
// credentials, so it should outlive the client.
func NewSecretManagerClient(ctx context.Context, opts ...option.ClientOption) (SecretManagerClient, error) {
	svc, err := secretmanager.NewService(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("failed to create Secret Manager client: %w", err)
	}
	return restClient{svc}, nil
}

type restClient struct{ svc *secretmanager.Service }

func (c restClient) ListSecretVersions(ctx context.Context, secret string) ([]*secretmanager.SecretVersion, error) {
	var all []*secretmanager.SecretVersion
	err := c.svc.Projects.Secrets.Versions.List(secret).Context(ctx).Pages(ctx, func(r *secretmanager.ListSecretVersionsResponse) error {
		all = append(all, r.Versions...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to list secret versions: %w", err)
	}
	return all, nil
}

func (c restClient) AccessSecretVersion(ctx context.Context, version string) (*secretmanager.AccessSecretVersionResponse, error) {
	resp, err := c.svc.Projects.Secrets.Versions.Access(version).Context(ctx).Do()
	if err != nil {
		return nil, fmt.Errorf("failed to access secret version: %w", err)
	}
	return resp, nil
}
