package wfexpr

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

type indent struct{ prefix, step string }

// EncodeJSON encodes a Workflows value as compact JSON with map keys sorted,
// so equal values always encode to equal bytes (json.encode uses it). Bytes
// and other values that cannot be JSON-encoded raise ValueError, the
// exception json.encode documents for them
// (https://cloud.google.com/workflows/docs/reference/stdlib/json/encode).
// Decision: compact output, non-ASCII left as UTF-8, doubles as formatDouble
// (2.0 stays 2.0).
func EncodeJSON(v any) ([]byte, error) {
	b, err := encodeJSON(v, nil)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func encodeJSON(v any, opt *indent) ([]byte, error) {
	var b strings.Builder
	if err := writeJSON(&b, v, opt, 0); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

func newline(b *strings.Builder, opt *indent, depth int) {
	b.WriteByte('\n')
	b.WriteString(opt.prefix)
	for range depth {
		b.WriteString(opt.step)
	}
}

func writeJSON(b *strings.Builder, v any, opt *indent, depth int) error {
	if depth > 1000 {
		return newError(TagValueError, "json.encode: value nested too deeply")
	}
	switch x := normalize(v).(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return newError(TagValueError, "json.encode: %v cannot be JSON-encoded", x)
		}
		b.WriteString(formatDouble(x))
	case string:
		writeString(b, x)
	case []any:
		if len(x) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			if opt != nil {
				newline(b, opt, depth+1)
			}
			if err := writeJSON(b, e, opt, depth+1); err != nil {
				return err
			}
		}
		if opt != nil {
			newline(b, opt, depth)
		}
		b.WriteByte(']')
	case map[string]any:
		if len(x) == 0 {
			b.WriteString("{}")
			return nil
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			if opt != nil {
				newline(b, opt, depth+1)
			}
			writeString(b, k)
			b.WriteByte(':')
			if opt != nil {
				b.WriteByte(' ')
			}
			if err := writeJSON(b, x[k], opt, depth+1); err != nil {
				return err
			}
		}
		if opt != nil {
			newline(b, opt, depth)
		}
		b.WriteByte('}')
	default:
		return newError(TagValueError, "json.encode: %s cannot be JSON-encoded", TypeName(v))
	}
	return nil
}

// DecodeJSON decodes JSON into Workflows values: integers without a fraction
// or exponent that fit in 64 bits become int64, other numbers float64,
// objects map[string]any and arrays []any. Invalid JSON, trailing data and
// out-of-range numbers raise ValueError
// (https://cloud.google.com/workflows/docs/reference/stdlib/json/decode).
// The runner uses it for execution arguments too, so `args.n + 1` stays an
// integer.
func DecodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, newError(TagValueError, "json.decode: invalid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, newError(TagValueError, "json.decode: invalid JSON: data after the value")
	}
	return fromJSON(v)
}

func fromJSON(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return i, nil
			}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, newError(TagValueError, "json.decode: number %s out of range", s)
		}
		return f, nil
	case []any:
		for i, e := range x {
			d, err := fromJSON(e)
			if err != nil {
				return nil, err
			}
			x[i] = d
		}
		return x, nil
	case map[string]any:
		for k, e := range x {
			d, err := fromJSON(e)
			if err != nil {
				return nil, err
			}
			x[k] = d
		}
		return x, nil
	}
	return v, nil
}
