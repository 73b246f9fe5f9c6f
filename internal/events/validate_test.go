package events

import (
	"encoding/json"
	"errors"
	"io/fs"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/isoduration"
	"github.com/jitpipeline/jit/schemas"
)

var commands = []string{TypeApprovalRequested, TypeActivationRequested, TypeRevokeRequested}

// TestSchemaFilesMatchTypes: docs/architecture.md §2 "one JSON Schema per event type
// under schemas/": every type has schemas/<type>.json and every file is a
// type's, each a draft 2020-12 schema with its $id, closed to unknown
// fields.
func TestSchemaFilesMatchTypes(t *testing.T) {
	t.Parallel()
	files, err := fs.Glob(schemas.FS, "*.json")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, strings.TrimSuffix(f, ".json"))
	}
	want := slices.Sorted(slices.Values(Types))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("schema files vs events.Types (-types +files):\n%s", diff)
	}
	for _, typ := range Types {
		doc := schemaDoc(t, typ)
		for key, want := range map[string]any{
			"$schema":              "https://json-schema.org/draft/2020-12/schema",
			"$id":                  SchemaURL(typ),
			"title":                typ,
			"type":                 "object",
			"additionalProperties": false,
		} {
			if doc[key] != want {
				t.Errorf("%s: %s = %v, want %v", typ, key, doc[key], want)
			}
		}
	}
	if _, err := compileSchemas(schemas.FS); err != nil {
		t.Fatalf("embedded schemas do not compile: %v", err)
	}
}

// TestCompileSchemasReportsEveryMismatch: a missing schema, a stray file
// and a wrong $id are all reported at once.
func TestCompileSchemasReportsEveryMismatch(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{}
	for _, typ := range Types {
		b, err := schemas.FS.ReadFile(typ + ".json")
		if err != nil {
			t.Fatal(err)
		}
		fsys[typ+".json"] = &fstest.MapFile{Data: b}
	}
	delete(fsys, TypeApproved+".json")
	fsys["dev.jitpipeline.grant.extended.v1.json"] = &fstest.MapFile{Data: []byte(`{}`)}
	fsys[TypeEnded+".json"] = &fstest.MapFile{Data: []byte(`{"$id":"https://example.com/x.json"}`)}
	_, err := compileSchemas(fsys)
	if err == nil {
		t.Fatal("compileSchemas accepted a broken set")
	}
	for _, want := range []string{
		"event type " + TypeApproved + " has no schema",
		"schema dev.jitpipeline.grant.extended.v1.json has no event type",
		"schema " + TypeEnded + `.json: $id is "https://example.com/x.json"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestSchemasDescribeData: the schemas and the Go type Data agree on field
// names, and each schema's example (published for subscribers) validates
// and survives a decode into Data and back unchanged, so no field is typed
// differently on the two sides.
func TestSchemasDescribeData(t *testing.T) {
	t.Parallel()
	var fields []string
	rt := reflect.TypeFor[Data]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		fields = append(fields, name)
	}
	for _, typ := range Types {
		doc := schemaDoc(t, typ)
		props := doc["properties"].(map[string]any)
		var want []string
		for _, f := range fields {
			switch {
			case f == "callbackUrl" && !slices.Contains(commands, typ):
			case f == "reason" && typ != TypeRevokeRequested:
			case f == "endCallbackUrl" && typ != TypeActivationRequested:
			default:
				want = append(want, f)
			}
		}
		got := slices.Sorted(func(yield func(string) bool) {
			for k := range props {
				if !yield(k) {
					return
				}
			}
		})
		slices.Sort(want)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: properties vs Data fields (-Data +schema):\n%s", typ, diff)
		}

		ex := example(t, typ, nil)
		b := mustJSON(t, ex)
		if err := Validate(typ, b); err != nil {
			t.Errorf("%s: example is invalid: %v", typ, err)
			continue
		}
		var d Data
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		var back map[string]any
		if err := json.Unmarshal(mustJSON(t, d), &back); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(ex, back); diff != "" {
			t.Errorf("%s: example → Data → JSON changed it (-example +back):\n%s", typ, diff)
		}
	}
}

// TestValidateRequired: removing any required field of any type is
// reported at the root, naming the field.
func TestValidateRequired(t *testing.T) {
	t.Parallel()
	for _, typ := range Types {
		req := schemaDoc(t, typ)["required"].([]any)
		for _, r := range req {
			field := r.(string)
			err := Validate(typ, mustJSON(t, example(t, typ, map[string]any{field: nil})))
			var de *DataError
			if !errors.As(err, &de) || !errors.Is(err, ErrInvalid) {
				t.Errorf("%s without %s: err = %v, want a *DataError wrapping ErrInvalid", typ, field, err)
				continue
			}
			want := []Problem{{Path: "", Message: "missing property '" + field + "'", Keyword: "/required"}}
			if diff := cmp.Diff(want, de.Problems); diff != "" {
				t.Errorf("%s without %s (-want +got):\n%s", typ, field, diff)
			}
		}
	}
}

// TestValidateStateConst: each transition type fixes the state it reports
// (docs/architecture.md §2, PAM's names); any other state is refused.
func TestValidateStateConst(t *testing.T) {
	t.Parallel()
	allowed := map[string][]grant.State{
		TypeRequested:        {grant.ApprovalAwaited, grant.Activating, grant.Scheduled},
		TypeApproved:         {grant.ApprovalAwaited, grant.Activating, grant.Scheduled},
		TypeDenied:           {grant.Denied},
		TypeExpired:          {grant.Expired},
		TypeActivated:        {grant.Active},
		TypeActivationFailed: {grant.ActivationFailed},
		TypeWithdrawing:      {grant.Withdrawing},
		TypeRevoking:         {grant.Revoking},
		TypeEnded:            {grant.Ended},
		TypeRevoked:          {grant.Revoked},
		TypeWithdrawn:        {grant.Withdrawn},
		TypeRevocationVerified: {grant.Active, grant.Revoking, grant.Withdrawing, grant.Ended, grant.Revoked,
			grant.Withdrawn, grant.ActivationFailed},
		TypeApprovalRequested:   {grant.ApprovalAwaited},
		TypeActivationRequested: {grant.ApprovalAwaited, grant.Activating, grant.Scheduled},
		TypeRevokeRequested: {grant.ApprovalAwaited, grant.Scheduled, grant.Activating, grant.Active,
			grant.Revoking, grant.Withdrawing},
	}
	all := []grant.State{grant.ApprovalAwaited, grant.Scheduled, grant.Activating, grant.Active,
		grant.ActivationFailed, grant.Denied, grant.Expired, grant.Revoking, grant.Revoked, grant.Ended,
		grant.Withdrawing, grant.Withdrawn, "active", ""}
	for _, typ := range Types {
		for _, s := range all {
			changes := map[string]any{"state": string(s)}
			if typ == TypeRequested && s != grant.ApprovalAwaited {
				changes["approvalRequired"] = nil // the example awaits approval
			}
			err := Validate(typ, mustJSON(t, example(t, typ, changes)))
			ok := slices.Contains(allowed[typ], s)
			if ok != (err == nil) {
				t.Errorf("%s with state %q: err = %v, want ok = %v", typ, s, err, ok)
			}
			if err != nil && !strings.Contains(err.Error(), "/state: value must be") {
				t.Errorf("%s with state %q: error %q does not blame /state", typ, s, err)
			}
		}
	}
}

// TestValidateProblems: table of invalid payloads, each problem named with
// its JSON path and the JSON pointer of the schema keyword it breaks.
func TestValidateProblems(t *testing.T) {
	t.Parallel()
	// The pattern as the validator quotes it (backslashes doubled).
	const durationRE = `^P(?:[0-9]+D|(?:[0-9]+D)?T(?:[0-9]+H(?:[0-9]+M)?(?:[0-9]+(?:\\.[0-9]+)?S)?|[0-9]+M(?:[0-9]+(?:\\.[0-9]+)?S)?|[0-9]+(?:\\.[0-9]+)?S))$`
	tests := []struct {
		name    string
		typ     string
		changes map[string]any
		want    []Problem
	}{{
		name:    "bad grant ID",
		typ:     TypeActivated,
		changes: map[string]any{"grantId": "g-ABCDEFGHIJKLMNOPQRST"},
		want:    []Problem{{"/grantId", "'g-ABCDEFGHIJKLMNOPQRST' does not match pattern '^g-[a-z2-7]{20}$'", "/properties/grantId/pattern"}},
	}, {
		name:    "grant ID one character short",
		typ:     TypeRequested,
		changes: map[string]any{"grantId": "g-abcdefghijklmnopqrs"},
		want:    []Problem{{"/grantId", "'g-abcdefghijklmnopqrs' does not match pattern '^g-[a-z2-7]{20}$'", "/properties/grantId/pattern"}},
	}, {
		name:    "extra field",
		typ:     TypeDenied,
		changes: map[string]any{"comment": "x"},
		want:    []Problem{{"", "additional properties 'comment' not allowed", "/additionalProperties"}},
	}, {
		// A callback URL is a capability: transitions, read by any
		// subscriber, must not carry one.
		name:    "callback URL on a transition",
		typ:     TypeActivated,
		changes: map[string]any{"callbackUrl": "https://example.com/cb"},
		want:    []Problem{{"", "additional properties 'callbackUrl' not allowed", "/additionalProperties"}},
	}, {
		name:    "reason on another command",
		typ:     TypeActivationRequested,
		changes: map[string]any{"reason": "end"},
		want:    []Problem{{"", "additional properties 'reason' not allowed", "/additionalProperties"}},
	}, {
		name:    "unknown revoke reason",
		typ:     TypeRevokeRequested,
		changes: map[string]any{"reason": "later"},
		want:    []Problem{{"/reason", "value must be one of 'end', 'withdraw', 'revoke', 'expired'", "/properties/reason/enum"}},
	}, {
		name:    "expired revoke of an active grant",
		typ:     TypeRevokeRequested,
		changes: map[string]any{"reason": "expired"},
		want:    []Problem{{"/state", "value must be 'APPROVAL_AWAITED'", "/then/properties/state/const"}},
	}, {
		name:    "callback URL not a URL",
		typ:     TypeApprovalRequested,
		changes: map[string]any{"callbackUrl": "/callbacks/1"},
		want: []Problem{
			{"/callbackUrl", "'/callbacks/1' does not match pattern '^https?://'", "/properties/callbackUrl/pattern"},
			{"/callbackUrl", "'/callbacks/1' is not valid uri: not absolute (no scheme)", "/properties/callbackUrl/format"},
		},
	}, {
		name:    "requester not an email",
		typ:     TypeRequested,
		changes: map[string]any{"requester": "alice"},
		want:    []Problem{{"/requester", "'alice' is not valid email: missing @", "/properties/requester/format"}},
	}, {
		name:    "duration in years",
		typ:     TypeRequested,
		changes: map[string]any{"requestedDuration": "P1Y"},
		want:    []Problem{{"/requestedDuration", "'P1Y' does not match pattern '" + durationRE + "'", "/properties/requestedDuration/pattern"}},
	}, {
		name:    "duration not ISO 8601",
		typ:     TypeActivationRequested,
		changes: map[string]any{"requestedDuration": "1h"},
		want:    []Problem{{"/requestedDuration", "'1h' does not match pattern '" + durationRE + "'", "/properties/requestedDuration/pattern"}},
	}, {
		name:    "time not RFC 3339",
		typ:     TypeActivated,
		changes: map[string]any{"startTime": "2026-01-02 03:04:05"},
		want:    []Problem{{"/startTime", "'2026-01-02 03:04:05' is not valid date-time: too short for YYYY-MM-DDTHH:MM:SS and a time offset", "/properties/startTime/format"}},
	}, {
		name:    "privilege on a bucket",
		typ:     TypeActivated,
		changes: map[string]any{"privileges": []any{map[string]any{"resource": "buckets/b", "role": "roles/viewer"}}},
		want: []Problem{{"/privileges/0/resource",
			"'buckets/b' does not match pattern '^(projects/[a-z][a-z0-9-]{4,28}[a-z0-9]|folders/[0-9]{1,20}|organizations/[0-9]{1,20})$'", "/$defs/privilege/properties/resource/pattern"}},
	}, {
		name:    "no privileges",
		typ:     TypeActivationRequested,
		changes: map[string]any{"privileges": []any{}},
		want:    []Problem{{"/privileges", "minItems: got 0, want 1", "/properties/privileges/minItems"}},
	}, {
		name:    "approval requested of nobody",
		typ:     TypeApprovalRequested,
		changes: map[string]any{"approvers": []any{}, "requiredApprovals": 0},
		want: []Problem{
			{"/approvers", "minItems: got 0, want 1", "/properties/approvers/minItems"},
			{"/requiredApprovals", "minimum: got 0, want 1", "/properties/requiredApprovals/minimum"},
		},
	}, {
		name:    "awaiting approval without a deadline",
		typ:     TypeRequested,
		changes: map[string]any{"approvalDeadline": nil, "approvalRequired": false},
		want: []Problem{
			{"", "missing property 'approvalDeadline'", "/allOf/0/then/required"},
			{"/approvalRequired", "value must be true", "/allOf/0/then/properties/approvalRequired/const"},
		},
	}, {
		name:    "empty justification",
		typ:     TypeRequested,
		changes: map[string]any{"justification": ""},
		want:    []Problem{{"/justification", "minLength: got 0, want 1", "/properties/justification/minLength"}},
	}, {
		name:    "wrong type",
		typ:     TypeApproved,
		changes: map[string]any{"requiredApprovals": "1"},
		want:    []Problem{{"/requiredApprovals", "got string, want integer", "/properties/requiredApprovals/type"}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := Validate(tc.typ, mustJSON(t, example(t, tc.typ, tc.changes)))
			var de *DataError
			if !errors.As(err, &de) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want a *DataError wrapping ErrInvalid", err)
			}
			if de.Type != tc.typ {
				t.Errorf("Type = %q, want %q", de.Type, tc.typ)
			}
			if diff := cmp.Diff(tc.want, de.Problems); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestValidateNotAPayload: unknown types and payloads that are not one
// JSON object are invalid (ErrInvalid), not transient.
func TestValidateNotAPayload(t *testing.T) {
	t.Parallel()
	ok := mustJSON(t, example(t, TypeActivated, nil))
	for name, tc := range map[string]struct {
		typ  string
		data []byte
	}{
		"unknown type":    {"dev.jitpipeline.grant.extended.v1", ok},
		"empty type":      {"", ok},
		"no data":         {TypeActivated, nil},
		"not JSON":        {TypeActivated, []byte("{")},
		"two values":      {TypeActivated, append(ok, ok...)},
		"array":           {TypeActivated, []byte("[]")},
		"other case type": {strings.ToUpper(TypeActivated), ok},
	} {
		if err := Validate(tc.typ, tc.data); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

// TestDurationPatternMatchesIsoduration: what the pipeline writes
// (isoduration.Format) is what the schemas accept.
func TestDurationPatternMatchesIsoduration(t *testing.T) {
	t.Parallel()
	props := schemaDoc(t, TypeRequested)["properties"].(map[string]any)
	re := regexp.MustCompile(props["requestedDuration"].(map[string]any)["pattern"].(string))
	for _, d := range []time.Duration{time.Second, 90 * time.Second, time.Hour, 90 * time.Minute,
		24 * time.Hour, 30 * time.Hour, 7*24*time.Hour + time.Second, 1500 * time.Millisecond} {
		s := isoduration.Format(d)
		if !re.MatchString(s) {
			t.Errorf("isoduration.Format(%v) = %q does not match the schema", d, s)
		}
		if err := Validate(TypeRequested, mustJSON(t, example(t, TypeRequested, map[string]any{"requestedDuration": s}))); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"P", "PT", "P1DT", "P1W", "P1M", "PT1H30", "-PT1H", "pt1h"} {
		if re.MatchString(s) {
			t.Errorf("pattern accepts %q", s)
		}
	}
}
