package jsonstrict_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/jsonstrict"
)

type privilege struct {
	Resource string `json:"resource"`
	Role     string `json:"role"`
}

type request struct {
	Entitlement string         `json:"entitlement"`
	Duration    string         `json:"requestedDuration,omitempty"`
	Inputs      map[string]any `json:"inputs"`
	Privileges  []privilege    `json:"privileges"`
	Owner       *privilege     `json:"owner"`
	Raw         json.RawMessage
	When        time.Time `json:"when"`
	Ignored     string    `json:"-"`
	Count       int       `json:"count,string"`
	internal    string    //nolint:unused // unexported fields are not JSON fields
}

// TestRefused: every way for two readers to disagree, and trailing data,
// refused with the kind and the path of the offence.
func TestRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		in       string
		wantKind error
		wantPath string
	}{
		{"duplicate name", `{"entitlement":"a","entitlement":"b"}`, jsonstrict.ErrDuplicateName, "entitlement"},
		{"case variant", `{"entitlement":"a","Entitlement":"b"}`, jsonstrict.ErrDuplicateName, "Entitlement"},
		{"case variant, unknown to the struct", `{"inputs":{},"INPUTS":{}}`, jsonstrict.ErrDuplicateName, "INPUTS"},
		{"kelvin sign folds to k", `{"inputs":{"key":1,"\u212aey":2}}`, jsonstrict.ErrDuplicateName, "inputs.\u212aey"},
		{"escaped duplicate", `{"entitlement":"a","entitl\u0065ment":"b"}`, jsonstrict.ErrDuplicateName, "entitlement"},
		{"duplicate in a map", `{"inputs":{"ticket":"A","ticket":"B"}}`, jsonstrict.ErrDuplicateName, "inputs.ticket"},
		{"case variant in a map", `{"inputs":{"ticket":"A","Ticket":"B"}}`, jsonstrict.ErrDuplicateName, "inputs.Ticket"},
		{"duplicate deep in any", `{"inputs":{"a":[{"b":{"c":1,"c":2}}]}}`, jsonstrict.ErrDuplicateName, "inputs.a[0].b.c"},
		{"duplicate in an array element", `{"privileges":[{"role":"x"},{"role":"x","role":"y"}]}`, jsonstrict.ErrDuplicateName, "privileges[1].role"},
		{"duplicate in a RawMessage", `{"Raw":{"x":1,"x":2}}`, jsonstrict.ErrDuplicateName, "Raw.x"},
		{"duplicate with an odd name", `{"inputs":{"a.b":1,"a.b":2}}`, jsonstrict.ErrDuplicateName, `inputs["a.b"]`},
		{"duplicate empty name", `{"inputs":{"":1,"":2}}`, jsonstrict.ErrDuplicateName, `inputs[""]`},
		{"unknown field", `{"entitlement":"a","role":"owner"}`, jsonstrict.ErrUnknownField, "role"},
		{"case-insensitive match of a field", `{"Entitlement":"a"}`, jsonstrict.ErrUnknownField, "Entitlement"},
		{"unknown field in a slice of structs", `{"privileges":[{"resource":"r","roles":"x"}]}`, jsonstrict.ErrUnknownField, "privileges[0].roles"},
		{"unknown field behind a pointer", `{"owner":{"Role":"x"}}`, jsonstrict.ErrUnknownField, "owner.Role"},
		{"a field tagged -", `{"Ignored":"x"}`, jsonstrict.ErrUnknownField, "Ignored"},
		{"an unexported field", `{"internal":"x"}`, jsonstrict.ErrUnknownField, "internal"},
		{"trailing value", `{"entitlement":"a"} {"entitlement":"b"}`, jsonstrict.ErrTrailingData, ""},
		{"trailing garbage", `{"entitlement":"a"}x`, jsonstrict.ErrTrailingData, ""},
		{"trailing bracket", `{"entitlement":"a"}]`, jsonstrict.ErrTrailingData, ""},
		{"empty", ``, jsonstrict.ErrSyntax, ""},
		{"white space only", " \n\t", jsonstrict.ErrSyntax, ""},
		{"truncated", `{"entitlement":"a",`, jsonstrict.ErrSyntax, ""},
		{"syntax error inside", `{"inputs":{"a" 1}}`, jsonstrict.ErrSyntax, "inputs"},
		{"wrong type", `{"entitlement":1}`, jsonstrict.ErrType, "entitlement"},
		{"wrong type deep", `{"privileges":[{"role":true}]}`, jsonstrict.ErrType, "privileges.role"},
		{"not an object", `[1]`, jsonstrict.ErrType, ""},
		{"number out of range", `{"inputs":{"n":1e400}}`, jsonstrict.ErrType, "inputs"}, // encoding/json's path
		{"bad time", `{"when":"yesterday"}`, jsonstrict.ErrType, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got request
			err := jsonstrict.Unmarshal([]byte(tt.in), &got)
			var e *jsonstrict.Error
			if !errors.As(err, &e) {
				t.Fatalf("Unmarshal(%s) = %v (%T), want an *Error", tt.in, err, err)
			}
			if !errors.Is(err, tt.wantKind) {
				t.Errorf("Unmarshal(%s) = %v, want kind %v", tt.in, err, tt.wantKind)
			}
			if e.Path != tt.wantPath {
				t.Errorf("Unmarshal(%s): path %q, want %q (%v)", tt.in, e.Path, tt.wantPath, err)
			}
			if e.Path != "" && !strings.Contains(err.Error(), e.Path) {
				t.Errorf("the message %q does not name the path", err)
			}
		})
	}
}

// TestAccepted: what is accepted decodes as encoding/json decodes it.
func TestAccepted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
	}{
		{"full", `{"entitlement":"prod","requestedDuration":"PT1H","inputs":{"ticket":"INC-1","n":1.5,"list":[1,"a",null,{"x":{}}]},
			"privileges":[{"resource":"projects/p","role":"roles/viewer"}],"owner":{"role":"r"},"Raw":{"a":[1,2]},
			"when":"2026-01-02T03:04:05.123456789Z","count":"42"}`},
		{"same name in sibling objects", `{"inputs":{"a":{"x":1},"b":{"x":2,"X2":3}}}`},
		{"same name at different depths", `{"inputs":{"inputs":{"inputs":1}}}`},
		{"names that only look alike", `{"inputs":{"ss":1,"ß":2,"a":3,"á":4}}`},
		{"nulls", `{"entitlement":null,"inputs":null,"privileges":null,"owner":null}`},
		{"empty object", `{}`},
		{"white space around", " \n {\"entitlement\":\"a\"} \r\n\t"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got, want request
			if err := jsonstrict.Unmarshal([]byte(tt.in), &got); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if err := json.Unmarshal([]byte(tt.in), &want); err != nil {
				t.Fatalf("encoding/json: %v", err)
			}
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(request{})); diff != "" {
				t.Errorf("differs from encoding/json (-json +strict):\n%s", diff)
			}
		})
	}
}

type Base struct {
	ID   string `json:"id"`
	Note string
}

type Other struct {
	ID string `json:"id"`
}

type Memo struct {
	Note string
	Memo string
}

type withEmbedded struct {
	Base
	*Other `json:"other"`
	Name   string `json:"name"`
}

type ambiguous struct {
	Base
	Memo
}

// TestEmbedded: fields promoted from embedded structs are known by the
// names encoding/json gives them, and names it drops as ambiguous are
// unknown.
func TestEmbedded(t *testing.T) {
	t.Parallel()
	var w withEmbedded
	if err := jsonstrict.Unmarshal([]byte(`{"id":"a","Note":"n","other":{"id":"b"},"name":"x"}`), &w); err != nil {
		t.Fatalf("embedded fields: %v", err)
	}
	if w.Base.ID != "a" || w.Note != "n" || w.Other == nil || w.Other.ID != "b" || w.Name != "x" {
		t.Errorf("decoded %+v", w)
	}
	if err := jsonstrict.Unmarshal([]byte(`{"Base":{}}`), &w); !errors.Is(err, jsonstrict.ErrUnknownField) {
		t.Errorf("the embedded struct's own name: %v, want unknown", err)
	}
	var a ambiguous
	if err := jsonstrict.Unmarshal([]byte(`{"id":"i","Memo":"m"}`), &a); err != nil || a.ID != "i" || a.Memo.Memo != "m" {
		t.Errorf("unambiguous promoted fields: %v, %+v", err, a)
	}
	if err := jsonstrict.Unmarshal([]byte(`{"Note":"x"}`), &a); !errors.Is(err, jsonstrict.ErrUnknownField) {
		t.Errorf("ambiguous promoted field: %v, want unknown (encoding/json drops it)", err)
	}
}

// TestTargets: any, maps and non-pointers.
func TestTargets(t *testing.T) {
	t.Parallel()
	var v any
	if err := jsonstrict.Unmarshal([]byte(`{"a":[1,{"b":true}]}`), &v); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"a": []any{1.0, map[string]any{"b": true}}}, v); diff != "" {
		t.Errorf("any (-want +got):\n%s", diff)
	}
	var m map[string]json.RawMessage
	if err := jsonstrict.Unmarshal([]byte(`{"iss":"a","ISS":"b"}`), &m); !errors.Is(err, jsonstrict.ErrDuplicateName) {
		t.Errorf("claims with iss and ISS: %v, want a duplicate", err)
	}
	var s string
	if err := jsonstrict.Unmarshal([]byte(`"x"`), s); err == nil {
		t.Error("a non-pointer target was accepted")
	}
	if err := jsonstrict.Unmarshal([]byte(`"x"`), nil); err == nil {
		t.Error("a nil target was accepted")
	}
}

// TestDecodeReadError: an error of the reader comes back wrapped, so an
// HTTP handler can tell a body over its limit from bad JSON.
func TestDecodeReadError(t *testing.T) {
	t.Parallel()
	r := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(strings.Repeat(" ", 100)+"{}")), 10)
	var v any
	err := jsonstrict.Decode(r, &v)
	var tooBig *http.MaxBytesError
	if !errors.As(err, &tooBig) {
		t.Errorf("Decode over the limit: %v, want a *http.MaxBytesError", err)
	}
	if err := jsonstrict.Decode(strings.NewReader(`{"a":1}`), &v); err != nil {
		t.Errorf("Decode: %v", err)
	}
}

// TestDepth: encoding/json's nesting limit (10000) holds, refused before
// any decoding, and the error's path stays short.
func TestDepth(t *testing.T) {
	t.Parallel()
	nested := func(n int) []byte {
		return []byte(strings.Repeat("[", n) + strings.Repeat("]", n))
	}
	var v any
	if err := jsonstrict.Unmarshal(nested(10000), &v); err != nil {
		t.Errorf("10000 levels: %v", err)
	}
	err := jsonstrict.Unmarshal(nested(10001), &v)
	var e *jsonstrict.Error
	if !errors.As(err, &e) || !errors.Is(err, jsonstrict.ErrSyntax) {
		t.Fatalf("10001 levels: %v, want a syntax refusal", err)
	}
	if len(e.Path) > 210 {
		t.Errorf("path of %d bytes in the error", len(e.Path))
	}
	if err := json.Unmarshal(nested(10001), &v); err == nil {
		t.Error("encoding/json's limit changed: it accepted 10001 levels")
	}
}
