package source

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/api/option"
)

// LocationOption adjusts the clients ParseLocation builds.
type LocationOption func(*locationConfig)

type locationConfig struct {
	secretManager []option.ClientOption
	storage       []option.ClientOption
}

// WithClientOptions passes opts to every Google client ParseLocation builds.
func WithClientOptions(opts ...option.ClientOption) LocationOption {
	return func(c *locationConfig) {
		c.secretManager = append(c.secretManager, opts...)
		c.storage = append(c.storage, opts...)
	}
}

// WithSecretManagerOptions passes opts to the Secret Manager client only
// (e.g. the endpoint of a local fake).
func WithSecretManagerOptions(opts ...option.ClientOption) LocationOption {
	return func(c *locationConfig) { c.secretManager = append(c.secretManager, opts...) }
}

// WithStorageOptions passes opts to the Cloud Storage client only.
func WithStorageOptions(opts ...option.ClientOption) LocationOption {
	return func(c *locationConfig) { c.storage = append(c.storage, opts...) }
}

// ParseLocation builds the Loader a policy location names:
//
//	PATH, file:PATH                              a local file
//	secretmanager:projects/P/secrets/S           Secret Manager, version latest
//	secretmanager:projects/P/secrets/S/versions/V  a pinned version (or alias)
//	sm://P/S, sm://P/S#V                         short form of the two above
//	gs://BUCKET/OBJECT                           a Cloud Storage object
//
// Any other "scheme:" prefix (http://…, or a typo like secretmanger:…) is an
// error rather than a file name, so a mistake fails loudly. ctx is only used
// to build the clients; like any Google client constructor's, it should
// outlive the loader.
func ParseLocation(ctx context.Context, s string, opts ...LocationOption) (Loader, error) {
	var cfg locationConfig
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case s == "":
		return nil, fmt.Errorf("policy location is empty")
	case strings.HasPrefix(s, "file:"):
		return loader(NewFileLoader(strings.TrimPrefix(strings.TrimPrefix(s, "file:"), "//")))
	case strings.HasPrefix(s, "secretmanager:"):
		name := strings.TrimPrefix(s, "secretmanager:")
		if strings.Count(name, "/") == 3 {
			name += "/versions/latest"
		}
		if err := checkSecretVersionName(name); err != nil {
			return nil, fmt.Errorf("invalid policy location %q: %w", s, err)
		}
		return loader(NewSecretManagerLoader(ctx, name, cfg.secretManager...))
	case strings.HasPrefix(s, "sm://"):
		rest, version, found := strings.Cut(strings.TrimPrefix(s, "sm://"), "#")
		if !found {
			version = "latest"
		}
		project, secret, ok := strings.Cut(rest, "/")
		if !ok || project == "" || secret == "" || version == "" || strings.Contains(secret, "/") {
			return nil, fmt.Errorf("invalid policy location %q: want sm://PROJECT/SECRET[#VERSION]", s)
		}
		return loader(NewSecretManagerLoader(ctx, "projects/"+project+"/secrets/"+secret+"/versions/"+version, cfg.secretManager...))
	case strings.HasPrefix(s, "gs://"):
		bucket, object, ok := strings.Cut(strings.TrimPrefix(s, "gs://"), "/")
		if !ok || bucket == "" || object == "" {
			return nil, fmt.Errorf("invalid policy location %q: want gs://BUCKET/OBJECT", s)
		}
		return loader(NewStorageLoader(ctx, bucket, object, cfg.storage...))
	case hasScheme(s):
		return nil, fmt.Errorf("invalid policy location %q: unknown scheme (want a path, file:, secretmanager:, sm:// or gs://)", s)
	default:
		return loader(NewFileLoader(s))
	}
}

// loader converts a constructor's result to the interface, keeping a failed
// constructor's nil pointer from becoming a non-nil Loader.
func loader[L Loader](l L, err error) (Loader, error) {
	if err != nil {
		return nil, err
	}
	return l, nil
}

// hasScheme reports whether s starts like a URL ("name:" where name is a
// scheme word of two or more letters), so "C:\…" stays a path while "http://…"
// and "secretmanger:…" (a typo) do not.
func hasScheme(s string) bool {
	scheme, _, ok := strings.Cut(s, ":")
	if !ok || len(scheme) < 2 {
		return false
	}
	for i, r := range scheme {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !letter && (i == 0 || (r < '0' || r > '9') && r != '+' && r != '-' && r != '.') {
			return false
		}
	}
	return true
}
