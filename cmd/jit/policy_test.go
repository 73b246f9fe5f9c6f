package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const cleanPolicy = `schemaVersion: 1
environment:
  name: prod
  systems:
    - name: sys
      groups:
        - name: grp
          access:
            - principal: user:ann@example.com
              allow: JOIN
          constraints:
            join:
              - type: expiry
                min: PT1H
                max: PT8H
`

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyLint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clean := writeFile(t, dir, "clean.yaml", cleanPolicy)
	broken := writeFile(t, dir, "broken.yaml", strings.Replace(cleanPolicy, "allow: JOIN", "allow: JOYN", 1))

	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"clean", []string{"policy", "lint", clean}, 0, "1 file(s) clean\n"},
		{"issue", []string{"policy", "lint", clean, broken}, 1, broken + ":10:22: ACL_INVALID_PERMISSION: The specified permissions are invalid: unknown permission \"JOYN\" (want VIEW, JOIN, APPROVE_SELF, APPROVE_OTHERS, EXPORT, RECONCILE, REQUEST_ON_BEHALF or ALL) [prod.sys.grp]\n"},
		{"missing file", []string{"policy", "lint", filepath.Join(dir, "nope.yaml")}, 1, filepath.Join(dir, "nope.yaml") + ":1:1: FILE_INVALID: no such file or directory [file]\n"},
		{"no files", []string{"policy", "lint"}, 2, ""},
		{"bad format", []string{"policy", "lint", "--format=xml", clean}, 2, ""},
	} {
		var out, errOut bytes.Buffer
		code := run(t.Context(), tc.args, &out, &errOut)
		if code != tc.wantCode || out.String() != tc.wantOut {
			t.Errorf("%s: exit %d, stdout %q (stderr %q); want exit %d, stdout %q", tc.name, code, out.String(), errOut.String(), tc.wantCode, tc.wantOut)
		}
	}
}

func TestPolicyLintJSON(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	broken := writeFile(t, dir, "broken.yaml", strings.Replace(cleanPolicy, "schemaVersion: 1", "schemaVersion: 2", 1))
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"policy", "lint", "--format=json", broken}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, stderr %s", code, errOut.String())
	}
	var got struct {
		Issues []map[string]any `json:"issues"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %s", out.String())
	}
	want := []map[string]any{{
		"file": broken, "code": "FILE_INVALID_VERSION", "line": 1.0, "column": 16.0, "scope": "file",
		"message": `The schema version "2" is not supported (use 1)`,
	}}
	if diff := cmp.Diff(want, got.Issues); diff != "" {
		t.Errorf("issues (-want +got):\n%s", diff)
	}

	out.Reset()
	clean := writeFile(t, dir, "clean.yaml", cleanPolicy)
	if code := run(t.Context(), []string{"policy", "lint", "--format=json", clean}, &out, &errOut); code != 0 || strings.TrimSpace(out.String()) != "{\n  \"issues\": []\n}" {
		t.Errorf("clean: exit %d, %q", code, out.String())
	}
}
