// Command sourcezip writes the function source archive that terraform
// uploads for Cloud Functions: go.mod, go.sum and the files of every package
// of this module that the root package (the one the Go buildpack builds)
// depends on — nothing else, so no tests, local mode or commands are
// shipped. terraform names the uploaded object after the archive's MD5, so
// the same source must give the same bytes: entries are sorted, with a fixed
// time, mode 0644 and no extra fields.
//
//	go run ./internal/tools/sourcezip -o build/function-source.zip
package main

import (
	"archive/zip"
	"bytes"
	"crypto/md5" //nolint:gosec // G501: the object name terraform derives, not a security check
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// The MS-DOS encoding of 1980-01-01 00:00:00, the earliest time a zip
// header holds. Set directly rather than through FileHeader.Modified, which
// would add an extended-timestamp extra field to every entry.
const (
	dosDate = 1<<5 | 1 // (1980-1980)<<9 | month<<5 | day
	dosTime = 0
)

// targetEnv pins the build context go list resolves files for to the one
// Cloud Build uses (linux/amd64, cgo available), so the archive does not
// depend on the machine that makes it; GOFLAGS is cleared so build tags set
// there cannot change the file set, and GOWORK so a go.work around the
// checkout cannot change how packages resolve.
var targetEnv = []string{"GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=1", "GOFLAGS=", "GOWORK=off"}

func main() {
	out := flag.String("o", "build/function-source.zip", "the archive to write")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: sourcezip [-o build/function-source.zip]")
		os.Exit(2)
	}
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "sourcezip:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	root, err := moduleRoot(".")
	if err != nil {
		return err
	}
	fs, err := files(root)
	if err != nil {
		return err
	}
	size, sum, err := writeFile(out, root, fs)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s: %d files, %d bytes, md5 %s\n", out, len(fs), size, sum)
	return nil
}

// moduleRoot is the directory of the go.mod that governs dir.
func moduleRoot(dir string) (string, error) {
	cmd := exec.Command("go", "env", "GOMOD")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(b))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("%s is not inside a module", dir)
	}
	return filepath.Dir(gomod), nil
}

// pkg is the part of go list's JSON that says which files a build reads.
type pkg struct {
	ImportPath string
	Dir        string
	Standard   bool
	Module     *struct {
		Path string
		Dir  string
		Main bool
	}
	GoFiles, CgoFiles, CFiles, CXXFiles, MFiles, HFiles, FFiles, SFiles, SwigFiles, SwigCXXFiles, SysoFiles, EmbedFiles []string
}

// files lists, sorted and relative to root with forward slashes, what
// building the package in root (a module's root directory) reads from the
// module: go.mod, go.sum and the non-test files of the module's packages it
// depends on, embedded files included.
func files(root string) ([]string, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("module root: %w", err)
	}
	cmd := exec.Command("go", "list", "-deps", "-json", ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), targetEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -deps -json . in %s: %w\n%s", root, err, stderr.Bytes())
	}
	var pkgs []pkg
	for dec := json.NewDecoder(bytes.NewReader(b)); ; {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("reading go list's output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		return nil, errors.New("go list -deps listed no packages")
	}
	// go list -deps prints the named package last, after its dependencies.
	top := pkgs[len(pkgs)-1]
	if top.Module == nil || !top.Module.Main {
		return nil, fmt.Errorf("%s (in %s) is not the main module's package", top.ImportPath, root)
	}
	if !sameDir(top.Module.Dir, root) {
		return nil, fmt.Errorf("%s is not the root of module %s (%s is)", root, top.Module.Path, top.Module.Dir)
	}
	mod := top.Module.Path
	local := mod + "/internal/local"

	out := []string{"go.mod", "go.sum"}
	for _, p := range pkgs {
		if p.Standard || (p.ImportPath != mod && !strings.HasPrefix(p.ImportPath, mod+"/")) {
			continue
		}
		// A nested module under the tree shares the path prefix but is
		// resolved from the module cache, not from this archive.
		if p.Module == nil || p.Module.Path != mod {
			continue
		}
		// deps_test.go forbids this; shipping the emulator would be worse
		// than not deploying at all.
		if p.ImportPath == local || strings.HasPrefix(p.ImportPath, local+"/") {
			return nil, fmt.Errorf("the root package depends on %s, which must not be deployed", p.ImportPath)
		}
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			return nil, fmt.Errorf("package %s: %w", p.ImportPath, err)
		}
		rel = filepath.ToSlash(rel)
		if rel == ".." || strings.HasPrefix(rel, "../") {
			return nil, fmt.Errorf("package %s lies outside %s", p.ImportPath, root)
		}
		for _, list := range [][]string{p.GoFiles, p.CgoFiles, p.CFiles, p.CXXFiles, p.MFiles, p.HFiles, p.FFiles, p.SFiles, p.SwigFiles, p.SwigCXXFiles, p.SysoFiles, p.EmbedFiles} {
			for _, f := range list {
				out = append(out, path.Join(rel, f))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func sameDir(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// write writes a zip of files (slash-separated, relative to root) to w, in
// the order given, each with the same time and mode so the bytes depend on
// the names and contents alone.
func write(w io.Writer, root string, files []string) error {
	zw := zip.NewWriter(w)
	for _, name := range files {
		h := &zip.FileHeader{
			Name:         name,
			Method:       zip.Deflate,
			ModifiedDate: dosDate, //nolint:staticcheck // SA1019: Modified would add an extra field with the time
			ModifiedTime: dosTime, //nolint:staticcheck // SA1019: as above
		}
		h.SetMode(0o644)
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return fmt.Errorf("adding %s: %w", name, err)
		}
		if err := copyFile(fw, filepath.Join(root, filepath.FromSlash(name))); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("finishing the archive: %w", err)
	}
	return nil
}

func copyFile(w io.Writer, name string) error {
	f, err := os.Open(name) //nolint:gosec // G304: a file go list names in this module
	if err != nil {
		return fmt.Errorf("reading source: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	return nil
}

// writeFile writes the archive to out through a temporary file in the same
// directory, renamed into place, so a reader (terraform computing the MD5)
// never sees half an archive. It returns the size and hex MD5.
func writeFile(out, root string, files []string) (int64, string, error) {
	dir := filepath.Dir(out)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return 0, "", fmt.Errorf("creating %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(out)+".*")
	if err != nil {
		return 0, "", fmt.Errorf("creating the archive: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed

	h := md5.New() //nolint:gosec // G401: see the import
	cw := &countWriter{w: io.MultiWriter(tmp, h)}
	if err := write(cw, root, files); err != nil {
		tmp.Close()
		return 0, "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return 0, "", fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return 0, "", fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	// CreateTemp makes the file 0600; the archive is no secret.
	if err := os.Chmod(tmp.Name(), 0o644); err != nil { //nolint:gosec // G302: a build artefact of public source
		return 0, "", fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return 0, "", fmt.Errorf("renaming into place: %w", err)
	}
	return cw.n, hex.EncodeToString(h.Sum(nil)), nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
