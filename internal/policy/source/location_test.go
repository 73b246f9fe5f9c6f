package source_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/api/option"

	"github.com/jitpipeline/jit/internal/policy/source"
)

func TestParseLocation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    string // the loader's String()
		wantErr string
	}{
		{in: "policy.yaml", want: "file:policy.yaml"},
		{in: "/etc/jit/policy.yaml", want: "file:/etc/jit/policy.yaml"},
		{in: "./conf/a:b.yaml", want: "file:./conf/a:b.yaml"},
		{in: "file:policy.yaml", want: "file:policy.yaml"},
		{in: "file:///etc/jit/policy.yaml", want: "file:/etc/jit/policy.yaml"},
		// docs/jit-access.md §3.8: JIT Groups reads projects/P/secrets/jit-<env>/versions/latest.
		{in: "secretmanager:projects/acme/secrets/jit-prod", want: "secretmanager:projects/acme/secrets/jit-prod/versions/latest"},
		{in: "secretmanager:projects/acme/secrets/jit-prod/versions/7", want: "secretmanager:projects/acme/secrets/jit-prod/versions/7"},
		{in: "sm://acme/jit-prod", want: "secretmanager:projects/acme/secrets/jit-prod/versions/latest"},
		{in: "sm://acme/jit-prod#3", want: "secretmanager:projects/acme/secrets/jit-prod/versions/3"},
		{in: "gs://acme-policies/jit/prod.yaml", want: "gs://acme-policies/jit/prod.yaml"},

		{in: "", wantErr: "empty"},
		{in: "file:", wantErr: "empty"},
		{in: "secretmanager:projects/acme", wantErr: "not of the form"},
		{in: "secretmanager:projects/acme/locations/eu/secrets/s/versions/1", wantErr: "not of the form"},
		{in: "sm://acme", wantErr: "sm://PROJECT/SECRET"},
		{in: "sm://acme/a/b", wantErr: "sm://PROJECT/SECRET"},
		{in: "sm://acme/jit-prod#", wantErr: "sm://PROJECT/SECRET"},
		{in: "gs://bucket-only", wantErr: "gs://BUCKET/OBJECT"},
		{in: "gs:///object", wantErr: "gs://BUCKET/OBJECT"},
		{in: "https://example.com/policy.yaml", wantErr: "unknown scheme"},
		{in: "secretmanger:projects/acme/secrets/s", wantErr: "unknown scheme"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			l, err := source.ParseLocation(t.Context(), tc.in, source.WithClientOptions(option.WithoutAuthentication()))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseLocation(%q) = %v, %v; want error mentioning %q", tc.in, l, err, tc.wantErr)
				}
				if l != nil {
					t.Errorf("ParseLocation(%q) returned a non-nil Loader %#v with its error", tc.in, l)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLocation(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, fmt.Sprint(l)); diff != "" {
				t.Errorf("ParseLocation(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

// The per-service options aim each client at its own fake.
func TestParseLocationClientOptions(t *testing.T) {
	t.Parallel()
	sm, smOpts := newSMFake(t)
	sm.add("jit-prod", "from secret manager")
	gcs, gcsOpts := newGCSFake(t)
	gcs.put("acme-policies", "policy.yaml", "from storage")
	opts := []source.LocationOption{source.WithSecretManagerOptions(smOpts...), source.WithStorageOptions(gcsOpts...)}

	for in, want := range map[string]string{
		"sm://acme-jit/jit-prod":                           "from secret manager",
		"gs://acme-policies/policy.yaml":                   "from storage",
		"secretmanager:projects/acme-jit/secrets/jit-prod": "from secret manager",
	} {
		l, err := source.ParseLocation(t.Context(), in, opts...)
		if err != nil {
			t.Fatalf("ParseLocation(%q): %v", in, err)
		}
		data, _, err := l.Load(t.Context())
		if err != nil || string(data) != want {
			t.Errorf("%s: Load = %q, %v; want %q", in, data, err, want)
		}
	}
}
