package jsonstrict_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/jsonstrict"
)

// FuzzUnmarshal compares jsonstrict with encoding/json on any input, into
// an untyped and a typed target:
//
//   - whatever encoding/json refuses (DisallowUnknownFields, one value),
//     jsonstrict refuses too;
//
//   - whatever jsonstrict accepts decodes exactly as with encoding/json;
//
//   - jsonstrict refuses what encoding/json accepts only for a duplicate
//     or case-variant name, or (typed) a name that matches a struct field
//     only case-insensitively, which the error then names.
//
//     go test -run='^$' -fuzz=FuzzUnmarshal -fuzztime=60s ./internal/jsonstrict/
func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `null`, `1`, `"x"`, `{"a":1}`, `{"a":1,"a":2}`, `{"a":1,"A":2}`, `{"k":1,"\u212a":2}`,
		`{"entitlement":"a","inputs":{"x":[1,{"y":null}]}}`, `{"Entitlement":"a"}`, `{"privileges":[{"role":"r"}]}`,
		`{"a":1} x`, `{"a":`, `[1,2,]`, `{"a":1e400}`, `"\ud800"`, "{\"\xff\":1,\"\xfe\":2}", `{"raw":{"a":1,"a":1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		compare(t, data, func() any { var v any; return &v })
		compare(t, data, func() any { return &request{} })
	})
}

// compare decodes data into two fresh targets, one with each package.
func compare(t *testing.T, data []byte, target func() any) {
	strict, loose := target(), target()
	errStrict := jsonstrict.Unmarshal(data, strict)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	errLoose := dec.Decode(loose)
	if errLoose == nil {
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			errLoose = errors.New("data after the value")
		}
	}
	switch {
	case errLoose != nil && errStrict == nil:
		t.Fatalf("jsonstrict accepted %q, which encoding/json refuses: %v", data, errLoose)
	case errStrict == nil:
		if diff := cmp.Diff(loose, strict, cmp.AllowUnexported(request{})); diff != "" {
			t.Fatalf("%q decodes differently (-json +strict):\n%s", data, diff)
		}
	case errLoose == nil:
		var e *jsonstrict.Error
		if !errors.As(errStrict, &e) || (!errors.Is(errStrict, jsonstrict.ErrDuplicateName) && !errors.Is(errStrict, jsonstrict.ErrUnknownField)) {
			t.Fatalf("jsonstrict refused %q, which encoding/json accepts, for something else: %v", data, errStrict)
		}
		if e.Path == "" {
			t.Fatalf("refusal of %q names no path: %v", data, errStrict)
		}
	}
}
