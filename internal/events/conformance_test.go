package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	reference "github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/jitpipeline/jit/schemas"
)

// The event schemas are checked by internal/jsonschema, a validator of the
// subset of JSON Schema they use. These tests hold it to the library the
// pipeline validated with before (github.com/santhosh-tekuri/jsonschema/v6,
// a test-only dependency now): every payload this package's tests
// validate, the schemas' examples and systematic mutations of them, and
// arbitrary JSON from the fuzzer, must be judged valid or invalid alike.

// referenceSchemas compiles the embedded schemas with the library, set up
// as validate.go set it up when it used it.
var referenceSchemas = sync.OnceValues(referenceSchemas0)

// referenceSchemas0 is referenceSchemas, uncached.
func referenceSchemas0() (map[string]*reference.Schema, error) {
	c := reference.NewCompiler()
	c.DefaultDraft(reference.Draft2020)
	c.AssertFormat() // formats are annotations only in 2020-12 unless asserted
	for _, t := range Types {
		b, err := schemas.FS.ReadFile(t + ".json")
		if err != nil {
			return nil, fmt.Errorf("failed to read schema of %s: %w", t, err)
		}
		doc, err := reference.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("failed to parse schema of %s: %w", t, err)
		}
		if err := c.AddResource(SchemaURL(t), doc); err != nil {
			return nil, fmt.Errorf("failed to add schema of %s: %w", t, err)
		}
	}
	out := map[string]*reference.Schema{}
	for _, t := range Types {
		s, err := c.Compile(SchemaURL(t))
		if err != nil {
			return nil, fmt.Errorf("failed to compile schema of %s: %w", t, err)
		}
		out[t] = s
	}
	return out, nil
}

// referenceValid is the library's judgement of data as a payload of
// eventType (one of Types), with its reason when invalid.
func referenceValid(eventType string, data []byte) (bool, error) {
	set, err := referenceSchemas()
	if err != nil {
		panic(err) // the schemas compiled with the library when they were written
	}
	v, err := reference.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return false, err
	}
	if err := set[eventType].Validate(v); err != nil {
		return false, err
	}
	return true, nil
}

// disagreement describes how the two validators judge data differently,
// or is "" when they agree.
func disagreement(eventType string, data []byte, ours error) string {
	if !slices.Contains(Types, eventType) {
		return ""
	}
	refOK, refErr := referenceValid(eventType, data)
	if refOK == (ours == nil) || refOK && stricterByDesign(data, ours) {
		return ""
	}
	return fmt.Sprintf("%s %s:\n  ours:      %v\n  reference: %v", eventType, data, ours, refErr)
}

// stricterByDesign reports whether ours, our judgement of data (a
// payload the library accepts), only finds problems the library is known
// to let through against the specification, each checked here apart from
// either validator:
//   - an email address with an empty local part ("@example.com"; RFC 5321
//     section 4.1.2 wants one character at least);
//   - a date-time with something else than an ASCII digit where RFC 3339
//     section 5.6 wants one (the library reads "+0" as an hour).
func stricterByDesign(data []byte, ours error) bool {
	var de *DataError
	if !errors.As(ours, &de) {
		return false
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return false
	}
	for _, p := range de.Problems {
		s, _ := valueAt(doc, p.Path).(string)
		switch {
		case strings.HasSuffix(p.Message, "is not valid email: empty local part") && strings.HasPrefix(s, "@"):
		case strings.Contains(p.Message, "is not valid date-time") && !rfc3339Shape.MatchString(s):
		default:
			return false
		}
	}
	return true
}

// rfc3339Shape is RFC 3339's date-time, digits and punctuation only.
var rfc3339Shape = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$`)

// valueAt is the value at a JSON pointer of doc, or nil.
func valueAt(doc any, ptr string) any {
	if ptr == "" {
		return doc
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch x := doc.(type) {
		case map[string]any:
			doc = x[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			doc = x[i]
		default:
			return nil
		}
	}
	return doc
}

// judged are the payloads Validate judged while this package's tests ran.
var judged struct {
	sync.Mutex
	seen map[string]bool
	all  []struct {
		typ  string
		data []byte
		err  error
	}
}

// TestMain checks, after the tests, that the library agrees with every
// judgement Validate made during them: the events New builds, the
// messages Receive refuses, every invalid payload of the tables.
func TestMain(m *testing.M) {
	judged.seen = map[string]bool{}
	validated = func(eventType string, data []byte, err error) {
		judged.Lock()
		defer judged.Unlock()
		if key := eventType + "\x00" + string(data); !judged.seen[key] {
			judged.seen[key] = true
			judged.all = append(judged.all, struct {
				typ  string
				data []byte
				err  error
			}{eventType, slices.Clone(data), err})
		}
	}
	code := m.Run()
	var bad []string
	for _, j := range judged.all {
		if d := disagreement(j.typ, j.data, j.err); d != "" {
			bad = append(bad, d)
		}
	}
	if len(bad) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: internal/jsonschema and the reference library disagree on %d of the %d payloads the tests validated:\n%s\n",
			len(bad), len(judged.all), strings.Join(bad, "\n"))
		code = 1
	} else if testing.Verbose() {
		fmt.Printf("the reference library agrees on all %d payloads the tests validated\n", len(judged.all))
	}
	os.Exit(code)
}

// TestConformance: on the corpus (examples and their mutations) both
// validators agree; the corpus has both valid and invalid payloads of
// every type, or it would prove little.
func TestConformance(t *testing.T) {
	t.Parallel()
	for _, typ := range Types {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			valid, invalid := 0, 0
			for _, data := range corpus(t, typ) {
				err := validate(typ, data)
				if d := disagreement(typ, data, err); d != "" {
					t.Error(d)
				}
				if err == nil {
					valid++
				} else {
					invalid++
				}
			}
			if valid < 5 || invalid < 100 {
				t.Errorf("corpus has %d valid and %d invalid payloads, want at least 5 and 100", valid, invalid)
			}
			t.Logf("%d valid, %d invalid", valid, invalid)
		})
	}
}

// FuzzConformance: on arbitrary bytes, as a payload of any type, both
// validators agree (both refuse what is not one JSON value).
func FuzzConformance(f *testing.F) {
	for i, typ := range Types {
		for _, ex := range schemaDocF(f, typ)["examples"].([]any) {
			b, err := json.Marshal(ex)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint8(i), b)
		}
	}
	f.Add(uint8(0), []byte(`{"grantId": 1e999999999}`))
	f.Add(uint8(0), []byte(`[]`))
	f.Fuzz(func(t *testing.T, i uint8, data []byte) {
		typ := Types[int(i)%len(Types)]
		err := validate(typ, data)
		if d := disagreement(typ, data, err); d != "" {
			t.Error(d)
		}
		var de *DataError
		if err != nil && !errors.Is(err, ErrInvalid) && !errors.As(err, &de) {
			t.Errorf("%s: error %v is not ErrInvalid", typ, err)
		}
	})
}

func schemaDocF(f *testing.F, eventType string) map[string]any {
	f.Helper()
	b, err := schemas.FS.ReadFile(eventType + ".json")
	if err != nil {
		f.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		f.Fatal(err)
	}
	return doc
}

// BenchmarkCompileSchemas: what compiling every schema costs, with ours
// and with the library (which compiled its metaschemas at init besides).
func BenchmarkCompileSchemas(b *testing.B) {
	b.Run("ours", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := compileSchemas(schemas.FS); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reference", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := referenceSchemas0(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
