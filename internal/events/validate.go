package events

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"

	"github.com/jitpipeline/jit/internal/jsonschema"
	"github.com/jitpipeline/jit/schemas"
)

// SchemaBase is where the schemas are published; a schema's $id, and the
// dataschema attribute of an event, is SchemaBase + type + ".json".
const SchemaBase = "https://raw.githubusercontent.com/jitpipeline/jit/main/schemas/"

// SchemaURL is the $id of the schema of an event type, which New also sets
// as the event's dataschema so subscribers know what to validate against.
func SchemaURL(eventType string) string { return SchemaBase + eventType + ".json" }

// ErrInvalid marks an event or a payload that can never be processed: an
// unknown type, data that does not match its schema, a malformed envelope.
// A function that receives one logs it and acknowledges it (retrying a
// poison message only burns the retry budget).
var ErrInvalid = errors.New("invalid event")

// Problem is one way a payload breaks its schema.
type Problem struct {
	// Path is the JSON pointer of the offending value ("" is the whole
	// payload).
	Path string
	// Message says what is wrong, in the validator's words.
	Message string
	// Keyword is the JSON pointer, in the type's schema, of the keyword
	// the value breaks ("/properties/grantId/pattern").
	Keyword string
}

func (p Problem) String() string {
	path := p.Path
	if path == "" {
		path = "(root)"
	}
	return path + ": " + p.Message + " (schema " + p.Keyword + ")"
}

// DataError reports every problem of a payload; it wraps ErrInvalid.
type DataError struct {
	Type     string
	Problems []Problem
}

func (e *DataError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.String()
	}
	return fmt.Sprintf("invalid %s data: %s", e.Type, strings.Join(msgs, "; "))
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *DataError) Unwrap() error { return ErrInvalid }

// embedded are the schemas of schemas.FS, read on the first validation.
// Each type's schema is compiled on its first validation: a function
// validates a few of the event types (grant and revoke publish and receive
// a handful), and compiling all of them would cost every function's first
// event some 3 ms and 1 MB (BenchmarkCompileSchemas; 18 ms and 8 MB with
// the library used before, issue 14). The embedded set is checked whole
// — a schema for every type, each with its $id — when it is read, and
// every schema is compiled by the package's tests.
var embedded = sync.OnceValues(func() (*schemaSet, error) {
	return loadSchemas(schemas.FS)
})

// schemaSet is the schema documents of every type, each compiled on
// its first use.
type schemaSet struct {
	compile map[string]func() (*jsonschema.Schema, error)
}

// schema is the compiled schema of eventType, which must be one of Types.
func (s *schemaSet) schema(eventType string) (*jsonschema.Schema, error) {
	sch, err := s.compile[eventType]()
	if err != nil {
		return nil, fmt.Errorf("failed to compile schema of %s: %w", eventType, err)
	}
	return sch, nil
}

// compileSchemas compiles every schema of fsys (loadSchemas), reporting
// every failure at once.
func compileSchemas(fsys fs.FS) (map[string]*jsonschema.Schema, error) {
	set, err := loadSchemas(fsys)
	if err != nil {
		return nil, err
	}
	var errs []error
	out := make(map[string]*jsonschema.Schema, len(Types))
	for _, t := range Types {
		s, err := set.schema(t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[t] = s
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// loadSchemas reads every *.json of fsys, which must hold exactly one
// schema per type in Types, each with its $id, compiling none.
func loadSchemas(fsys fs.FS) (*schemaSet, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, fmt.Errorf("failed to list schemas: %w", err)
	}
	var errs []error
	set := &schemaSet{compile: make(map[string]func() (*jsonschema.Schema, error), len(Types))}
	for _, name := range names {
		t := strings.TrimSuffix(name, ".json")
		if !slices.Contains(Types, t) {
			errs = append(errs, fmt.Errorf("schema %s has no event type", name))
			continue
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("failed to read schema %s: %w", name, err))
			continue
		}
		doc, err := jsonschema.Decode(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("failed to parse schema %s: %w", name, err))
			continue
		}
		obj, _ := doc.(map[string]any)
		if id, _ := obj["$id"].(string); id != SchemaURL(t) {
			errs = append(errs, fmt.Errorf("schema %s: $id is %q, want %q", name, id, SchemaURL(t)))
			continue
		}
		set.compile[t] = sync.OnceValues(func() (*jsonschema.Schema, error) {
			return jsonschema.CompileValue(doc)
		})
	}
	for _, t := range Types {
		if !slices.Contains(names, t+".json") {
			errs = append(errs, fmt.Errorf("event type %s has no schema", t))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return set, nil
}

// Validate checks an event's data against the schema of its type. An
// unknown type, data that is not one JSON object, or data that breaks the
// schema give an error wrapping ErrInvalid (a *DataError for the last,
// listing each problem with its JSON path and schema keyword).
func Validate(eventType string, data []byte) error {
	err := validate(eventType, data)
	if validated != nil {
		validated(eventType, data, err)
	}
	return err
}

// validated, when set (by the package's tests only, before any
// validation), sees every payload Validate judges: the tests compare each
// judgement with the JSON Schema library the schemas were first checked
// with (conformance_test.go).
var validated func(eventType string, data []byte, err error)

func validate(eventType string, data []byte) error {
	if !slices.Contains(Types, eventType) {
		return fmt.Errorf("%w: unknown event type %q", ErrInvalid, eventType)
	}
	set, err := embedded()
	if err != nil {
		// The embedded schemas are broken: a bug of this build, not of
		// the event, so not ErrInvalid.
		return fmt.Errorf("failed to load event schemas: %w", err)
	}
	s, err := set.schema(eventType)
	if err != nil {
		return fmt.Errorf("failed to load event schemas: %w", err) // a bug of this build too
	}
	v, err := jsonschema.Decode(data)
	if err != nil {
		return fmt.Errorf("%w: %s data is not JSON: %w", ErrInvalid, eventType, err)
	}
	err = s.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("%w: %s data: %w", ErrInvalid, eventType, err)
	}
	problems := make([]Problem, len(ve.Problems))
	for i, p := range ve.Problems {
		problems[i] = Problem{Path: p.Path, Message: p.Message, Keyword: p.Keyword}
	}
	slices.SortFunc(problems, cmpProblem)
	return &DataError{Type: eventType, Problems: slices.Compact(problems)}
}

func cmpProblem(a, b Problem) int {
	if c := strings.Compare(a.Path, b.Path); c != 0 {
		return c
	}
	return strings.Compare(a.Message, b.Message)
}
