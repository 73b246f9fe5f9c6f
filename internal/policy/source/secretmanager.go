package source

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"

	"google.golang.org/api/option"
	secretmanager "google.golang.org/api/secretmanager/v1"
)

// castagnoli is the CRC32C table Secret Manager and Cloud Storage checksum with.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SecretManagerLoader reads the policy from a Secret Manager secret version,
// as JIT Groups does (`projects/P/secrets/jit-<env>/versions/latest`,
// docs/jit-access.md §3.8). Its version is the resolved version name the API
// returns (`projects/…/secrets/S/versions/7`), so `latest` yields a new
// version exactly when a new secret version is added.
//
// Note: `latest` is an alias to the most recently *created* version, whatever
// its state; if that one is disabled, access fails (FAILED_PRECONDITION) and
// does not fall back to an older enabled version. Roll back by adding a new
// version with the old content, not by disabling the bad one.
type SecretManagerLoader struct {
	name string
	svc  *secretmanager.Service
}

// NewSecretManagerLoader returns a loader for the secret version name
// (`projects/P/secrets/S/versions/V`; V may be a number, an alias or
// `latest`). opts reach the REST client, e.g. option.WithEndpoint and
// option.WithoutAuthentication to aim it at a fake. ctx may be kept by the client
// for credentials, so it should outlive the loader.
func NewSecretManagerLoader(ctx context.Context, name string, opts ...option.ClientOption) (*SecretManagerLoader, error) {
	if err := checkSecretVersionName(name); err != nil {
		return nil, err
	}
	svc, err := secretmanager.NewService(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("failed to create Secret Manager client: %w", err)
	}
	return &SecretManagerLoader{name: name, svc: svc}, nil
}

// checkSecretVersionName accepts projects/P/secrets/S/versions/V with no
// empty segment. Regional secrets (projects/P/locations/L/…) need a regional
// endpoint and are not supported.
func checkSecretVersionName(name string) error {
	parts := strings.Split(name, "/")
	if len(parts) != 6 || parts[0] != "projects" || parts[2] != "secrets" || parts[4] != "versions" ||
		parts[1] == "" || parts[3] == "" || parts[5] == "" {
		return fmt.Errorf("secret version name %q is not of the form projects/PROJECT/secrets/SECRET/versions/VERSION", name)
	}
	return nil
}

// Load accesses the secret version. When the response carries a CRC32C of the
// payload, a mismatch refuses that version: the bytes are not the ones stored.
func (l *SecretManagerLoader) Load(ctx context.Context) ([]byte, string, error) {
	resp, err := l.svc.Projects.Secrets.Versions.Access(l.name).Context(ctx).Do()
	if err != nil {
		return nil, "", fmt.Errorf("failed to access secret version %s: %w", l.name, err)
	}
	version := resp.Name
	if version == "" {
		return nil, "", fmt.Errorf("secret version %s: response names no version", l.name)
	}
	if resp.Payload == nil {
		return nil, "", &VersionError{Version: version, Err: errors.New("response has no payload")}
	}
	data, err := base64.StdEncoding.DecodeString(resp.Payload.Data)
	if err != nil {
		return nil, "", &VersionError{Version: version, Err: fmt.Errorf("failed to decode payload: %w", err)}
	}
	// The generated struct cannot tell an absent dataCrc32c from a zero one,
	// so zero counts as absent (a 1 in 2^32 chance of skipping the check).
	if want := resp.Payload.DataCrc32c; want != 0 {
		if got := crc32.Checksum(data, castagnoli); int64(got) != want {
			return nil, "", &VersionError{Version: version,
				Err: fmt.Errorf("payload CRC32C mismatch: response says %d, data has %d", want, got)}
		}
	}
	return data, version, nil
}

// Name is the secret version name the loader accesses.
func (l *SecretManagerLoader) Name() string { return l.name }

// String names the location in logs.
func (l *SecretManagerLoader) String() string { return "secretmanager:" + l.name }
