package source_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jitpipeline/jit/internal/policy/source"
)

// writeFile writes data and pins the mtime, so tests control it exactly.
func writeFile(t *testing.T, path, data string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// The version must change with the content even when the mtime does not (an
// edit within the same second, or a filesystem with coarse timestamps), and
// must not change when neither does.
func TestFileLoaderVersion(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	l, err := source.NewFileLoader(path)
	if err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

	writeFile(t, path, "schemaVersion: 1 # A", mtime)
	data1, v1, err := l.Load(t.Context())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if string(data1) != "schemaVersion: 1 # A" {
		t.Errorf("data = %q", data1)
	}
	if !strings.HasPrefix(v1, "2026-03-01T09:00:00Z-") {
		t.Errorf("version %q does not start with the mtime", v1)
	}

	_, again, _ := l.Load(t.Context())
	if again != v1 {
		t.Errorf("unchanged file: version %q then %q, want stable", v1, again)
	}

	writeFile(t, path, "schemaVersion: 1 # B", mtime) // same size, same mtime
	data2, v2, err := l.Load(t.Context())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if v2 == v1 || string(data2) != "schemaVersion: 1 # B" {
		t.Errorf("same-mtime edit: version %q -> %q, data %q; want a new version with the new data", v1, v2, data2)
	}
}

func TestFileLoaderErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		path   string
		wantIs error
		want   string
	}{
		{name: "missing", path: filepath.Join(dir, "nope.yaml"), wantIs: fs.ErrNotExist},
		{name: "directory", path: dir, want: "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := (&source.FileLoader{Path: tc.path}).Load(t.Context())
			if err == nil {
				t.Fatal("Load succeeded, want error")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v is not %v", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	if _, err := source.NewFileLoader(""); err == nil {
		t.Error("NewFileLoader(\"\") succeeded, want error")
	}
}

// End to end in local mode: an edit is picked up after the TTL, a broken
// edit is refused, and a deleted file keeps the last good version.
func TestFileSource(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	mtime := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	writeFile(t, path, "good A", mtime)
	clk := newClock()
	var rej rejections
	src, err := source.New(t.Context(), source.Config[doc]{
		Loader: &source.FileLoader{Path: path}, Compile: newCompiler().Compile,
		Now: clk.Now, OnReject: rej.OnReject, Logger: discard,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}

	steps := []struct {
		name     string
		change   func()
		wantText string
		wantRej  int
	}{
		{"edit_same_mtime", func() { writeFile(t, path, "good B", mtime) }, "good B", 0},
		{"broken_edit", func() { writeFile(t, path, "bad C", mtime.Add(time.Second)) }, "good B", 1},
		{"deleted", func() { os.Remove(path) }, "good B", 1},
		{"fixed", func() { writeFile(t, path, "good D", mtime.Add(2*time.Second)) }, "good D", 1},
	}
	for _, st := range steps {
		st.change()
		clk.Advance(source.DefaultTTL)
		d, _, err := src.Current(t.Context())
		if err != nil || d.Text != st.wantText {
			t.Errorf("%s: Current = %q, %v; want %q", st.name, d.Text, err, st.wantText)
		}
		if got := len(rej.Get()); got != st.wantRej {
			t.Errorf("%s: rejections = %d, want %d", st.name, got, st.wantRej)
		}
	}
}
