package approvallink

import (
	"context"
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/api/googleapi"
	secretmanager "google.golang.org/api/secretmanager/v1"
)

// smFake is Secret Manager as far as SecretManagerKeys relies on it
// (https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets.versions):
//
//   - versions are numbered from 1 in the order they are added, and each
//     is ENABLED, DISABLED or DESTROYED; list returns them all, newest
//     first, named by project number whatever the request said;
//   - access to a version not ENABLED fails with 400 FAILED_PRECONDITION
//     ("Secret Version [...] is in DISABLED state."): a disabled version
//     cannot be accessed (https://cloud.google.com/secret-manager/docs/disable-secret-version);
//     a destroyed one has no payload left;
//   - an unknown secret is 404 NOT_FOUND;
//   - payloads come base64 with their CRC32C.
type smFake struct {
	mu       sync.Mutex
	number   string // the project number names are given with
	secret   string // the secret ID
	versions []smVersion
	badCRC   bool
	lists    int
	accesses int
}

type smVersion struct {
	data  []byte
	state string
}

var _ SecretManagerClient = (*smFake)(nil)

func newSMFake() *smFake { return &smFake{number: "123456789012", secret: "approval-links"} }

// add adds an ENABLED version and returns its number, as a kid.
func (f *smFake) add(data []byte) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.versions = append(f.versions, smVersion{data: data, state: "ENABLED"})
	return strconv.Itoa(len(f.versions))
}

func (f *smFake) setState(kid, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, _ := strconv.Atoi(kid)
	f.versions[n-1].state = state
	if state == "DESTROYED" {
		f.versions[n-1].data = nil
	}
}

func (f *smFake) calls() (lists, accesses int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists, f.accesses
}

// secretOf checks name is projects/P/secrets/ID[/rest] for this fake's
// secret (P its project ID or number).
func (f *smFake) secretOf(name string) (rest string, err error) {
	p := strings.SplitN(name, "/", 5)
	if len(p) < 4 || p[0] != "projects" || p[2] != "secrets" || (p[1] != "acme-jit" && p[1] != f.number) || p[3] != f.secret {
		return "", &googleapi.Error{Code: http.StatusNotFound, Message: fmt.Sprintf("Secret [%s] not found or has no versions.", name)}
	}
	if len(p) == 5 {
		return p[4], nil
	}
	return "", nil
}

func (f *smFake) ListSecretVersions(_ context.Context, secret string) ([]*secretmanager.SecretVersion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if rest, err := f.secretOf(secret); err != nil || rest != "" {
		return nil, &googleapi.Error{Code: http.StatusNotFound, Message: "not found"}
	}
	var out []*secretmanager.SecretVersion
	for i := len(f.versions) - 1; i >= 0; i-- {
		out = append(out, &secretmanager.SecretVersion{
			Name:  fmt.Sprintf("projects/%s/secrets/%s/versions/%d", f.number, f.secret, i+1),
			State: f.versions[i].state,
		})
	}
	return out, nil
}

func (f *smFake) AccessSecretVersion(_ context.Context, name string) (*secretmanager.AccessSecretVersionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.accesses++
	rest, err := f.secretOf(name)
	if err != nil {
		return nil, err
	}
	num, ok := strings.CutPrefix(rest, "versions/")
	n, errN := strconv.Atoi(num)
	if !ok || errN != nil || n < 1 || n > len(f.versions) {
		return nil, &googleapi.Error{Code: http.StatusNotFound, Message: fmt.Sprintf("Secret Version [%s] not found.", name)}
	}
	full := fmt.Sprintf("projects/%s/secrets/%s/versions/%d", f.number, f.secret, n)
	v := f.versions[n-1]
	if v.state != "ENABLED" {
		return nil, &googleapi.Error{Code: http.StatusBadRequest, Message: fmt.Sprintf("Secret Version [%s] is in %s state.", full, v.state)}
	}
	crc := int64(crc32.Checksum(v.data, crc32.MakeTable(crc32.Castagnoli)))
	if f.badCRC {
		crc++
	}
	return &secretmanager.AccessSecretVersionResponse{Name: full, Payload: &secretmanager.SecretPayload{
		Data: base64.StdEncoding.EncodeToString(v.data), DataCrc32c: crc,
	}}, nil
}
