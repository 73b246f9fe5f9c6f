// Package jsonstrict decodes JSON so that every reader of the same bytes
// sees the same value. encoding/json keeps the last of duplicate object
// names and matches struct fields case-insensitively, so
// {"entitlement":"a","Entitlement":"b"} or two "user" members decode to
// something a signature check, a reviewer or another parser did not see.
// Unmarshal and Decode refuse, with an *Error naming the path:
//
//   - duplicate names in an object, at any depth and whatever the Go type
//     (structs, maps, any, json.RawMessage): names equal exactly, and
//     names equal under the case folding encoding/json uses to match
//     fields (Unicode simple folding: "user"/"User", and "key" with a
//     KELVIN SIGN for its k). Names that differ only in case are refused
//     everywhere, not only where they would hit the same struct field:
//     whether they collide depends on the Go type of the reader, which a
//     signer or a reviewer of the bytes does not know, and no request of
//     this pipeline has a legitimate use for them;
//   - names of a struct's members that are not exactly one of its JSON
//     field names (unknown fields, and case variants of known ones);
//   - anything after the one JSON value but white space.
//
// What is accepted decodes exactly as encoding/json decodes it.
package jsonstrict

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Kinds of refusal, for errors.Is on an *Error.
var (
	ErrDuplicateName = errors.New("duplicate name")
	ErrUnknownField  = errors.New("unknown field")
	ErrTrailingData  = errors.New("data after the JSON value")
	ErrSyntax        = errors.New("not valid JSON")
	ErrType          = errors.New("wrong type")
)

// Error is a refusal of the input.
type Error struct {
	// Path is where the problem is: member names joined by ".", array
	// indexes in brackets (inputs.ticket, privileges[0].role); a name
	// that is not a plain word is quoted (inputs["a.b"]). "" is the
	// whole value. For a value of the wrong type it is encoding/json's
	// path, which has no array indexes or map keys (privileges.role).
	Path string
	// Problem says what is wrong, for people.
	Problem string
	// Err is one of the kinds above; encoding/json's error, if any, is
	// wrapped too.
	Err error
}

func (e *Error) Error() string {
	if e.Path == "" {
		return "json: " + e.Problem
	}
	return "json: " + e.Path + ": " + e.Problem
}

// Unwrap returns the kind and encoding/json's error, if any.
func (e *Error) Unwrap() error { return e.Err }

// Unmarshal decodes the one JSON value in data into v, a non-nil pointer,
// refusing what the package comment lists.
func Unmarshal(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &json.InvalidUnmarshalError{Type: reflect.TypeOf(v)}
	}
	if err := check(data, rv.Type().Elem()); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	return nil
}

// Decode reads r to its end and decodes it as Unmarshal does. An error
// reading r is returned wrapped (errors.As finds *http.MaxBytesError).
func Decode(r io.Reader, v any) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("failed to read JSON: %w", err)
	}
	return Unmarshal(data, v)
}

// decodeError turns an error of encoding/json, after check passed, into
// an *Error: a value of the wrong type, a number out of range, nesting
// deeper than encoding/json allows, or an UnmarshalJSON method's error.
func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		problem := "cannot be a JSON " + typeErr.Value
		if typeErr.Type != nil {
			problem += " (want " + typeErr.Type.String() + ")"
		}
		return &Error{Path: typeErr.Field, Problem: problem, Err: errors.Join(ErrType, err)}
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return &Error{Problem: strings.TrimPrefix(err.Error(), "json: "), Err: errors.Join(ErrSyntax, err)}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		// Only through an interface holding a struct, which check
		// cannot see; the name is all encoding/json tells.
		name, _ = strconv.Unquote(name)
		return &Error{Path: name, Problem: "unknown field", Err: errors.Join(ErrUnknownField, err)}
	}
	return &Error{Problem: strings.TrimPrefix(err.Error(), "json: "), Err: errors.Join(ErrType, err)}
}

// frame is an open object or array while check walks the tokens.
type frame struct {
	object bool
	// parent and seg make the path, built only for an error: building it
	// for every container would be quadratic in the nesting depth.
	parent *frame
	seg    string
	// typ is the Go type the container decodes into, nil where any
	// value goes (interfaces, UnmarshalJSON methods).
	typ reflect.Type
	// fields are the JSON names of a struct typ.
	fields map[string]reflect.Type
	// names maps the folded names seen so far to their spelling.
	names map[string]string
	// key is the name of the member whose value comes next, valid while
	// !wantKey.
	key     string
	wantKey bool
	// index is the index of an array's next element.
	index int
}

// Bounds of check: encoding/json's nesting limit, and the length of a
// path in an error (the rest is cut, from the root end).
const (
	maxDepth = 10000
	maxPath  = 200
)

// path is the frame's place in the value.
func (f *frame) path() string {
	var segs []string
	for ; f != nil; f = f.parent {
		segs = append(segs, f.seg)
	}
	var b strings.Builder
	for i := len(segs) - 1; i >= 0; i-- {
		b.WriteString(segs[i])
	}
	return clip(strings.TrimPrefix(b.String(), "."))
}

// clip keeps the last maxPath bytes of a long path, on a rune boundary.
func clip(path string) string {
	if len(path) <= maxPath {
		return path
	}
	cut := len(path) - maxPath
	for cut < len(path) && !utf8.RuneStart(path[cut]) {
		cut++
	}
	return "…" + path[cut:]
}

// check walks the tokens of data with the Go type t alongside, refusing
// duplicate names, unknown struct fields and trailing data. Syntax errors
// are refused here too, with the path where they occur.
func check(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // no range errors here: they are encoding/json's to report
	var top *frame
	depth := 0
	for started := false; !started || top != nil; started = true {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return &Error{Path: top.path(), Problem: "unexpected end of JSON input", Err: errors.Join(ErrSyntax, io.ErrUnexpectedEOF)}
			}
			return &Error{Path: top.path(), Problem: strings.TrimPrefix(err.Error(), "json: "), Err: errors.Join(ErrSyntax, err)}
		}
		if top != nil && top.object && top.wantKey {
			name, isName := tok.(string) // Token allows only a name or '}' here
			if !isName {
				top, depth = top.parent, depth-1
			} else if err := top.member(name); err != nil {
				return err
			}
			continue
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			top, depth = top.parent, depth-1
			continue
		}
		seg, vt := top.next(t)
		if d, ok := tok.(json.Delim); ok {
			if depth++; depth > maxDepth {
				return &Error{Path: top.path(), Problem: fmt.Sprintf("nested deeper than %d", maxDepth), Err: ErrSyntax}
			}
			top = open(top, seg, d == '{', vt)
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &Error{Problem: "data after the JSON value", Err: ErrTrailingData}
	}
	return nil
}

// next reports the path segment and Go type of the value that starts now:
// the root (f is nil) has type root, an array's element its element type,
// a member its field's or the map's value type.
func (f *frame) next(root reflect.Type) (string, reflect.Type) {
	if f == nil {
		return "", resolve(root)
	}
	if !f.object {
		seg := "[" + strconv.Itoa(f.index) + "]"
		f.index++
		if f.typ == nil {
			return seg, nil
		}
		return seg, resolve(f.typ.Elem())
	}
	f.wantKey = true
	seg := segment(f.key)
	switch {
	case f.typ == nil:
		return seg, nil
	case f.fields != nil:
		return seg, resolve(f.fields[f.key])
	default: // a map
		return seg, resolve(f.typ.Elem())
	}
}

// open starts a container, inside parent, decoding into t (resolved).
func open(parent *frame, seg string, object bool, t reflect.Type) *frame {
	f := &frame{object: object, parent: parent, seg: seg, wantKey: object}
	if t == nil {
		return f
	}
	switch {
	case object && t.Kind() == reflect.Struct:
		f.typ, f.fields = t, fieldsOf(t)
	case object && t.Kind() == reflect.Map,
		!object && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
		f.typ = t
	}
	// Anything else is a type mismatch that encoding/json reports; the
	// contents are then checked for duplicates only.
	return f
}

// member checks the name of the member that starts now.
func (f *frame) member(name string) error {
	if f.names == nil {
		f.names = map[string]string{}
	}
	folded := fold(name)
	if prev, dup := f.names[folded]; dup {
		if prev == name {
			return &Error{Path: f.memberPath(name), Problem: "the name appears twice in one object", Err: ErrDuplicateName}
		}
		return &Error{Path: f.memberPath(name), Problem: fmt.Sprintf("the name differs from %q only in case", prev), Err: ErrDuplicateName}
	}
	f.names[folded] = name
	if f.fields != nil {
		if _, ok := f.fields[name]; !ok {
			problem := "unknown field"
			for known := range f.fields {
				if fold(known) == folded {
					problem = fmt.Sprintf("unknown field (names are case-sensitive: %q)", known)
				}
			}
			return &Error{Path: f.memberPath(name), Problem: problem, Err: ErrUnknownField}
		}
	}
	f.key, f.wantKey = name, false
	return nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// resolve is the type whose structure constrains a JSON value decoded into
// t: pointers followed; nil for interfaces and for types that decode
// themselves (UnmarshalJSON), whose contents are checked for duplicates
// only.
func resolve(t reflect.Type) reflect.Type {
	for t != nil {
		if t.Implements(unmarshalerType) || (t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(unmarshalerType)) {
			return nil
		}
		switch t.Kind() {
		case reflect.Pointer:
			t = t.Elem()
		case reflect.Interface:
			return nil
		default:
			return t
		}
	}
	return nil
}

// segment is the path segment of a member: ".name", or ["name"] quoted
// for a name that is not a plain word.
func segment(name string) string {
	if !plain(name) {
		return "[" + strconv.Quote(name) + "]"
	}
	return "." + name
}

// memberPath is the path of f's member name.
func (f *frame) memberPath(name string) string {
	return clip(strings.TrimPrefix(f.path()+segment(name), "."))
}

func plain(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r != '_' && r != '-' && r != '$' && r != '@' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}

// fold maps a name to the same string as every name encoding/json would
// match it with (bytes.EqualFold): each rune to the smallest of its
// simple case folding orbit.
func fold(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for _, r := range name {
		for {
			next := unicode.SimpleFold(r)
			if next <= r {
				r = next
				break
			}
			r = next
		}
		b.WriteRune(r)
	}
	return b.String()
}

var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

// fieldsOf returns the JSON names of struct t's fields and their types, as
// encoding/json resolves them: tags, "-", embedded structs promoted
// breadth-first, the shallowest name winning, a tagged one among equals,
// and ambiguous names dropped.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	type found struct {
		typ    reflect.Type
		depth  int
		tagged bool
	}
	byName := map[string][]found{}
	visited := map[reflect.Type]bool{}
	level := []reflect.Type{t}
	for depth := 0; len(level) > 0; depth++ {
		var next []reflect.Type
		count := map[reflect.Type]int{}
		for _, st := range level {
			count[st]++
		}
		for _, st := range level {
			if visited[st] {
				continue
			}
			visited[st] = true
			for i := range st.NumField() {
				sf := st.Field(i)
				ft := sf.Type
				if sf.Anonymous {
					if ft.Kind() == reflect.Pointer {
						ft = ft.Elem()
					}
					if !sf.IsExported() && ft.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				if !validTag(name) {
					name = ""
				}
				if name == "" && sf.Anonymous && ft.Kind() == reflect.Struct {
					next = append(next, ft)
					continue
				}
				tagged := name != ""
				if !tagged {
					name = sf.Name
				}
				f := found{typ: sf.Type, depth: depth, tagged: tagged}
				byName[name] = append(byName[name], f)
				if count[st] > 1 { // two embeddings of one type: ambiguous
					byName[name] = append(byName[name], f)
				}
			}
		}
		level = next
	}
	fields := map[string]reflect.Type{}
	for name, fs := range byName {
		shallowest := fs[0].depth
		for _, f := range fs {
			shallowest = min(shallowest, f.depth)
		}
		var at, tagged []found
		for _, f := range fs {
			if f.depth == shallowest {
				at = append(at, f)
				if f.tagged {
					tagged = append(tagged, f)
				}
			}
		}
		switch {
		case len(at) == 1:
			fields[name] = at[0].typ
		case len(tagged) == 1:
			fields[name] = tagged[0].typ
		}
	}
	m, _ := fieldCache.LoadOrStore(t, fields)
	return m.(map[string]reflect.Type)
}

// validTag is encoding/json's rule for a usable name in a tag.
func validTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return utf8.ValidString(s)
}
