package source_test

import (
	"crypto/md5" //nolint:gosec // G501: Cloud Storage's md5Hash is MD5, which the fake must compute
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/jitpipeline/jit/internal/policy/source"
)

// gcsFake serves the two Cloud Storage JSON API calls the loader makes, as the
// generated client google.golang.org/api/storage/v1 sends them
// (storage-gen.go, ObjectsGetCall.doRequest):
//
//   - GET {base}/b/{bucket}/o/{object}?alt=json → object metadata, with
//     generation, metageneration and size as JSON strings (int64/uint64
//     `,string` fields in the client) and crc32c/md5Hash base64 (crc32c
//     big-endian).
//   - the same URL with alt=media → the content, with x-goog-generation and
//     x-goog-hash headers.
//   - {object} is path-escaped as one segment: "a/b" arrives as "a%2Fb".
//   - generation=G selects that generation among the live and, with object
//     versioning, the noncurrent ones; a generation that is gone is 404 "No
//     such object: bucket/object", as is a missing object.
//   - 403 for a caller without storage.objects.get.
//
// Wired through the real client with option.WithEndpoint + WithoutAuthentication
// (docs/google-cloud.md §11).
type gcsFake struct {
	mu         sync.Mutex
	versioning bool
	objects    map[string][]gcsGen // bucket/object -> generations, live last
	nextGen    int64
	badCRC     bool   // metadata crc32c does not match the content
	denied     bool   // every call is 403
	onMeta     func() // runs after a metadata response, outside the lock
	metaCalls  int
	mediaGens  []string // generation parameter of each media request
	history    []int64  // every generation ever written
}

type gcsGen struct {
	gen  int64
	data []byte
}

func newGCSFake(t *testing.T) (*gcsFake, []option.ClientOption) {
	t.Helper()
	f := &gcsFake{objects: map[string][]gcsGen{}, nextGen: 1700000000000000}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, []option.ClientOption{option.WithEndpoint(srv.URL + "/storage/v1/"), option.WithoutAuthentication()}
}

// put writes a new generation of bucket/object and returns it; without
// versioning the previous generation is gone.
func (f *gcsFake) put(bucket, object, data string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextGen += 1111
	key := bucket + "/" + object
	g := gcsGen{gen: f.nextGen, data: []byte(data)}
	f.history = append(f.history, g.gen)
	if f.versioning {
		f.objects[key] = append(f.objects[key], g)
	} else {
		f.objects[key] = []gcsGen{g}
	}
	return g.gen
}

func (f *gcsFake) set(fn func(f *gcsFake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *gcsFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hook, served := f.serve(w, r)
	if served && hook != nil {
		hook()
	}
}

func (f *gcsFake) serve(w http.ResponseWriter, r *http.Request) (func(), bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	parts := strings.Split(r.URL.EscapedPath(), "/")
	if r.Method != http.MethodGet || len(parts) != 7 || parts[1] != "storage" || parts[2] != "v1" || parts[3] != "b" || parts[5] != "o" {
		gcsError(w, http.StatusNotFound, "notFound", "Not Found")
		return nil, false
	}
	bucket, _ := url.PathUnescape(parts[4])
	object, err := url.PathUnescape(parts[6])
	if err != nil {
		gcsError(w, http.StatusBadRequest, "invalid", "bad object name")
		return nil, false
	}
	if f.denied {
		gcsError(w, http.StatusForbidden, "forbidden",
			"caller does not have storage.objects.get access to the Google Cloud Storage object. Permission 'storage.objects.get' denied on resource (or it may not exist).")
		return nil, false
	}
	gens := f.objects[bucket+"/"+object]
	if len(gens) == 0 {
		gcsError(w, http.StatusNotFound, "notFound", "No such object: "+bucket+"/"+object)
		return nil, false
	}
	g := gens[len(gens)-1]
	q := r.URL.Query()
	if q.Get("alt") == "media" {
		f.mediaGens = append(f.mediaGens, q.Get("generation"))
	}
	if s := q.Get("generation"); s != "" {
		want, _ := strconv.ParseInt(s, 10, 64)
		found := false
		for _, c := range gens {
			if c.gen == want {
				g, found = c, true
			}
		}
		if !found {
			gcsError(w, http.StatusNotFound, "notFound", "No such object: "+bucket+"/"+object)
			return nil, false
		}
	}
	gen := strconv.FormatInt(g.gen, 10)
	crc := make([]byte, 4)
	binary.BigEndian.PutUint32(crc, crc32.Checksum(g.data, crc32.MakeTable(crc32.Castagnoli)))
	if f.badCRC {
		crc[3] ^= 0xff
	}
	sum := md5.Sum(g.data) //nolint:gosec // G401: Cloud Storage's md5Hash, not a security check
	crcB64, md5B64 := base64.StdEncoding.EncodeToString(crc), base64.StdEncoding.EncodeToString(sum[:])

	switch q.Get("alt") {
	case "media":
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("X-Goog-Generation", gen)
		w.Header().Set("X-Goog-Hash", "crc32c="+crcB64+",md5="+md5B64)
		_, _ = w.Write(g.data) // a failed write is the client's error
		return nil, true
	case "json", "":
		f.metaCalls++
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		_ = json.NewEncoder(w).Encode(map[string]any{ // a failed write is the client's error
			"kind": "storage#object", "id": bucket + "/" + object + "/" + gen,
			"name": object, "bucket": bucket, "generation": gen, "metageneration": "1",
			"size": strconv.Itoa(len(g.data)), "crc32c": crcB64, "md5Hash": md5B64,
			"contentType": "application/yaml",
		})
		return f.onMeta, true
	default:
		gcsError(w, http.StatusBadRequest, "invalidParameter", "Invalid alt")
		return nil, false
	}
}

func gcsError(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{ // a failed write is the client's error
		"code": code, "message": msg,
		"errors": []any{map[string]any{"message": msg, "domain": "global", "reason": reason}},
	}})
}

func newStorageLoader(t *testing.T, opts []option.ClientOption, object string) *source.StorageLoader {
	t.Helper()
	l, err := source.NewStorageLoader(t.Context(), "acme-policies", object, opts...)
	if err != nil {
		t.Fatalf("NewStorageLoader: %v", err)
	}
	return l
}

func TestStorageLoader(t *testing.T) {
	t.Parallel()
	const object = "jit/prod.yaml" // a slash: sent as one escaped path segment
	for _, tc := range []struct {
		name       string
		setup      func(f *gcsFake) (wantVersion int64)
		wantData   string
		wantCode   int
		wantVerErr bool
	}{
		{
			name: "live_generation",
			setup: func(f *gcsFake) int64 {
				f.put("acme-policies", object, "one")
				return f.put("acme-policies", object, "two")
			},
			wantData: "two",
		},
		{
			name: "crc_mismatch_refuses_generation",
			setup: func(f *gcsFake) int64 {
				f.set(func(f *gcsFake) { f.badCRC = true })
				return f.put("acme-policies", object, "one")
			},
			wantVerErr: true,
		},
		{
			name:     "missing_object",
			setup:    func(*gcsFake) int64 { return 0 },
			wantCode: http.StatusNotFound,
		},
		{
			name: "permission_denied",
			setup: func(f *gcsFake) int64 {
				f.set(func(f *gcsFake) { f.denied = true })
				return f.put("acme-policies", object, "one")
			},
			wantCode: http.StatusForbidden,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, opts := newGCSFake(t)
			gen := tc.setup(f)
			data, version, err := newStorageLoader(t, opts, object).Load(t.Context())
			wantVersion := strconv.FormatInt(gen, 10)
			verr, isVerErr := errors.AsType[*source.VersionError](err)
			switch {
			case tc.wantVerErr:
				if !isVerErr || verr.Version != wantVersion || !strings.Contains(err.Error(), "CRC32C") {
					t.Errorf("Load error = %v, want a VersionError for generation %s about CRC32C", err, wantVersion)
				}
			case tc.wantCode != 0:
				ge, ok := errors.AsType[*googleapi.Error](err)
				if !ok || ge.Code != tc.wantCode || isVerErr {
					t.Errorf("Load error = %v, want googleapi code %d (not a VersionError)", err, tc.wantCode)
				}
			default:
				if err != nil || string(data) != tc.wantData || version != wantVersion {
					t.Errorf("Load = %q, %q, %v; want %q, %q", data, version, err, tc.wantData, wantVersion)
				}
			}
		})
	}
}

// The object is replaced between the metadata call and the download. The
// content must belong to the generation it is reported under; otherwise the
// source would file new content under the old version and never compile it.
func TestStorageLoaderGenerationPinning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		versioning  bool
		wantData    string
		wantGen     int // index into the two generations written
		wantMeta    int
		wantMediaAt []int // generations (by index) the downloads asked for
	}{
		// Versioned bucket: the old generation is still there; download it.
		{name: "versioned_bucket", versioning: true, wantData: "old", wantGen: 0, wantMeta: 1, wantMediaAt: []int{0}},
		// No versioning: the old generation is gone (404); start over.
		{name: "unversioned_bucket", versioning: false, wantData: "new", wantGen: 1, wantMeta: 2, wantMediaAt: []int{0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, opts := newGCSFake(t)
			f.set(func(f *gcsFake) { f.versioning = tc.versioning })
			f.put("acme-policies", "policy.yaml", "old")
			var once sync.Once
			f.set(func(f *gcsFake) {
				f.onMeta = func() { once.Do(func() { f.put("acme-policies", "policy.yaml", "new") }) }
			})
			data, version, err := newStorageLoader(t, opts, "policy.yaml").Load(t.Context())
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			gens := f.history
			if len(gens) != 2 {
				t.Fatalf("generations written = %v, want 2 (the hook did not run)", gens)
			}
			if string(data) != tc.wantData || version != strconv.FormatInt(gens[tc.wantGen], 10) {
				t.Errorf("Load = %q, %q; want %q under generation %d", data, version, tc.wantData, gens[tc.wantGen])
			}
			if f.metaCalls != tc.wantMeta {
				t.Errorf("metadata calls = %d, want %d", f.metaCalls, tc.wantMeta)
			}
			var want []string
			for _, i := range tc.wantMediaAt {
				want = append(want, strconv.FormatInt(gens[i], 10))
			}
			if strings.Join(f.mediaGens, ",") != strings.Join(want, ",") {
				t.Errorf("downloads asked for generations %v, want %v", f.mediaGens, want)
			}
		})
	}
}

// End to end: a new generation is picked up after the TTL; a broken one is
// refused once; a deleted object keeps the last good version.
func TestStorageSource(t *testing.T) {
	t.Parallel()
	f, opts := newGCSFake(t)
	g1 := f.put("acme-policies", "policy.yaml", "good 1")
	clk := newClock()
	var rej rejections
	src, err := source.New(t.Context(), source.Config[doc]{
		Loader: newStorageLoader(t, opts, "policy.yaml"), Compile: newCompiler().Compile,
		Now: clk.Now, OnReject: rej.OnReject, Logger: discard,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	gen := func(g int64) string { return strconv.FormatInt(g, 10) }
	if _, v, _ := src.Current(t.Context()); v != gen(g1) {
		t.Fatalf("initial version %q, want %s", v, gen(g1))
	}
	g2 := f.put("acme-policies", "policy.yaml", "bad 2")
	clk.Advance(source.DefaultTTL)
	if _, v, _ := src.Current(t.Context()); v != gen(g1) {
		t.Errorf("with broken generation: version %q, want %s", v, gen(g1))
	}
	if rs := rej.Get(); len(rs) != 1 || rs[0].Version != gen(g2) {
		t.Errorf("rejections = %+v, want one for %s", rs, gen(g2))
	}
	g3 := f.put("acme-policies", "policy.yaml", "good 3")
	clk.Advance(source.DefaultTTL)
	if d, v, _ := src.Current(t.Context()); v != gen(g3) || d.Text != "good 3" {
		t.Errorf("with fixed generation: %q, %q; want good 3, %s", d.Text, v, gen(g3))
	}
	f.set(func(f *gcsFake) { delete(f.objects, "acme-policies/policy.yaml") })
	clk.Advance(source.DefaultTTL)
	if d, v, _ := src.Current(t.Context()); v != gen(g3) || d.Text != "good 3" {
		t.Errorf("after delete: %q, %q; want good 3 kept", d.Text, v)
	}
}

func TestNewStorageLoaderValidates(t *testing.T) {
	t.Parallel()
	_, err := source.NewStorageLoader(t.Context(), "", "", option.WithoutAuthentication())
	if err == nil || !strings.Contains(err.Error(), "bucket name is empty") || !strings.Contains(err.Error(), "object name is empty") {
		t.Errorf("NewStorageLoader(\"\", \"\") = %v, want both problems", err)
	}
}
