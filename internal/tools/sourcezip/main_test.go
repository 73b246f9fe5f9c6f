package main

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// root is this repository's module root (the tests run in the package's
// directory).
var root = sync.OnceValues(func() (string, error) { return moduleRoot(".") })

// archive is the repository's archive, built once and shared by the tests
// that only read it.
var archive = sync.OnceValues(func() ([]byte, error) {
	r, err := root()
	if err != nil {
		return nil, err
	}
	fs, err := files(r)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := write(&buf, r, fs); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
})

func mustRoot(t *testing.T) string {
	t.Helper()
	r, err := root()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustArchive(t *testing.T) *zip.Reader {
	t.Helper()
	b, err := archive()
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("reading the archive: %v", err)
	}
	return zr
}

// TestDeterministic: two separate runs, go list included, give the same
// bytes, so terraform's MD5-named object changes only with the source.
func TestDeterministic(t *testing.T) {
	t.Parallel()
	r := mustRoot(t)
	dir := t.TempDir()
	var got [2][]byte
	var sums [2]string
	for i := range got {
		fs, err := files(r)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "sub", string(rune('a'+i)), "function-source.zip")
		size, sum, err := writeFile(out, r, fs)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) != size {
			t.Errorf("writeFile reported %d bytes, wrote %d", size, len(b))
		}
		got[i], sums[i] = b, sum
	}
	if !bytes.Equal(got[0], got[1]) {
		t.Errorf("two builds differ: %d bytes (md5 %s) and %d bytes (md5 %s)", len(got[0]), sums[0], len(got[1]), sums[1])
	}
	if sums[0] != sums[1] {
		t.Errorf("md5 %s, then %s", sums[0], sums[1])
	}
	// Only the archive is left: the temporary file was renamed.
	left, err := filepath.Glob(filepath.Join(dir, "sub", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 {
		t.Errorf("files left in the output directories: %q", left)
	}
}

func TestContents(t *testing.T) {
	t.Parallel()
	r := mustRoot(t)
	zr := mustArchive(t)
	have := map[string]bool{}
	var names []string
	for _, f := range zr.File {
		have[f.Name] = true
		names = append(names, f.Name)
	}
	for _, want := range []string{"go.mod", "go.sum", "jit.go", "internal/pages/templates/base.html", "internal/notify/templates/mail.txt"} {
		if !have[want] {
			t.Errorf("the archive lacks %s", want)
		}
	}
	// Embedded by package schemas, which the event code imports.
	if schemas, _ := filepath.Glob(filepath.Join(r, "schemas", "*.json")); len(schemas) == 0 {
		t.Error("no schemas/*.json in the repository")
	} else {
		for _, s := range schemas {
			if name := "schemas/" + filepath.Base(s); !have[name] {
				t.Errorf("the archive lacks %s", name)
			}
		}
	}
	// Every non-test file of a function package the root registers.
	grant, _ := filepath.Glob(filepath.Join(r, "functions", "grant", "*.go"))
	n := 0
	for _, g := range grant {
		if strings.HasSuffix(g, "_test.go") {
			continue
		}
		n++
		if name := "functions/grant/" + filepath.Base(g); !have[name] {
			t.Errorf("the archive lacks %s", name)
		}
	}
	if n == 0 {
		t.Error("no non-test files in functions/grant")
	}
	for i, name := range names {
		switch {
		case strings.HasSuffix(name, "_test.go"):
			t.Errorf("the archive holds a test file, %s", name)
		case strings.HasPrefix(name, "internal/local/"), strings.HasPrefix(name, "cmd/"), strings.HasPrefix(name, "terraform/"):
			t.Errorf("the archive holds %s, which the deployed package does not need", name)
		case strings.HasPrefix(name, "/"), strings.Contains(name, `\`), path.Clean(name) != name:
			t.Errorf("entry name %q is not a clean relative slash path", name)
		case i > 0 && names[i-1] >= name:
			t.Errorf("entries out of order: %s after %s", name, names[i-1])
		}
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	zr := mustArchive(t)
	epoch := time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range zr.File {
		if !f.Modified.Equal(epoch) {
			t.Errorf("%s: modified %v, want %v", f.Name, f.Modified, epoch)
		}
		if f.Mode() != 0o644 {
			t.Errorf("%s: mode %v, want -rw-r--r--", f.Name, f.Mode())
		}
		if len(f.Extra) != 0 {
			t.Errorf("%s: %d bytes of extra fields", f.Name, len(f.Extra))
		}
		if f.Method != zip.Deflate {
			t.Errorf("%s: method %d, want deflate", f.Name, f.Method)
		}
	}
}

// TestBuilds: the archive alone, with the module cache, builds the root
// package, so nothing go build reads was left out.
func TestBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the deployed package from the unzipped archive; skipped with -short")
	}
	t.Parallel()
	zr := mustArchive(t)
	dir := t.TempDir()
	for _, f := range zr.File {
		dst := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
			t.Fatal(err)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.CommandContext(t.Context(), "go", "build", "./")
	cmd.Dir = dir
	// Offline, and not through a go.work outside the directory: only what the
	// archive holds and the module cache.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./ in the unzipped archive: %v\n%s", err, out)
	}
}

// TestRefusesLocal: a root package that links internal/local is an error,
// not an archive with the emulator in it.
func TestRefusesLocal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":                   "module example.com/m\n\ngo 1.26\n",
		"m.go":                     "package m\n\nimport _ \"example.com/m/internal/local/fake\"\n",
		"internal/local/fake/f.go": "package fake\n",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := files(dir)
	// The check's own error, not go list failing on the made-up module.
	if err == nil || !strings.Contains(err.Error(), "depends on example.com/m/internal/local/fake, which must not be deployed") {
		t.Fatalf("files = %q, %v; want an error naming the internal/local package", fs, err)
	}
}

// TestSmallModule: exactly go.mod, go.sum and the non-test files of the
// packages linked, embedded files included; not other packages of the module.
func TestSmallModule(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":         "module example.com/m\n\ngo 1.26\n",
		"go.sum":         "",
		"m.go":           "package m\n\nimport _ \"example.com/m/a\"\n",
		"m_test.go":      "package m\n",
		"a/a.go":         "package a\n\nimport _ \"embed\"\n\n//go:embed data/*.txt\nvar s string\n",
		"a/data/x.txt":   "x",
		"a/other.yaml":   "not embedded",
		"unused/u.go":    "package unused\n",
		"cmd/tool/t.go":  "package main\n\nfunc main() {}\n",
		"README.md":      "",
		"a/a_test.go":    "package a\n",
		"a/doc_linux.go": "package a\n",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := files(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a/a.go", "a/data/x.txt", "a/doc_linux.go", "go.mod", "go.sum", "m.go"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("files = %q, want %q", got, want)
	}
}
