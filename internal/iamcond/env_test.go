package iamcond

import (
	"testing"
	"time"

	"github.com/google/cel-go/cel"
)

// evalBool compiles and evaluates expr in e; errors count as false, as in
// IAM.
func evalBool(t *testing.T, e *cel.Env, expr string, vars map[string]any) (bool, error) {
	t.Helper()
	a, iss := e.Compile(expr)
	if iss.Err() != nil {
		return false, iss.Err()
	}
	prog, err := e.Program(a)
	if err != nil {
		return false, err
	}
	out, _, err := prog.Eval(vars)
	if err != nil {
		return false, err
	}
	b, _ := out.Value().(bool)
	return b, nil
}

// docs/google-cloud.md §1 (conditions are a CEL subset) and the IAM conditions
// attribute reference: extract() returns the text between the template's
// prefix and suffix, or "" when it does not match; hasOnly() checks a list
// against allowed values; tag and api.getAttribute functions compile but
// have no implementation here, so they fail evaluation.
func TestEnv(t *testing.T) {
	t.Parallel()
	e, err := Env()
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := Env(); again != e {
		t.Error("Env() built a second environment; want it cached")
	}
	vars := map[string]any{
		"request.time":     time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC),
		"resource.name":    "projects/1001",
		"resource.type":    "cloudresourcemanager.googleapis.com/Project",
		"resource.service": "cloudresourcemanager.googleapis.com",
	}
	for _, tc := range []struct {
		expression string
		want       bool
		wantErr    bool
	}{
		{`"projects/p1/buckets/b".extract("projects/{p}/") == "p1"`, true, false},
		{`"projects/p1".extract("projects/{p}") == "p1"`, true, false},
		{`"folders/1".extract("projects/{p}/") == ""`, true, false},
		{`"projects/p1".extract("projects/") == ""`, false, true}, // no {placeholder}
		{`request.time.getHours("Europe/Berlin") == 11`, true, false},
		{`resource.name == "projects/1001" && resource.service == "cloudresourcemanager.googleapis.com"`, true, false},
		{`[1, 2].hasOnly([1, 2, 3])`, true, false},
		{`[1, 4].hasOnly([1, 2, 3])`, false, false},
		{`request.host == "x"`, false, true},
		{`resource.matchTag("123/env", "prod")`, false, true},
		{`api.getAttribute("iam.googleapis.com/modifiedGrantsByRole", []).hasOnly(["roles/x"])`, false, true},
		{`has({}.jitAccessConstraint)`, false, false},
		{`undeclared == 1`, false, true},
	} {
		got, err := evalBool(t, e, tc.expression, vars)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("%s = %v, %v; want %v, error %v", tc.expression, got, err, tc.want, tc.wantErr)
		}
	}
}

// docs/jit-access.md §3.4: JIT Groups offers IAM's extract() in its own
// expression constraints; ExtractFunction brings it to another environment.
func TestExtractFunctionInOtherEnv(t *testing.T) {
	t.Parallel()
	e, err := cel.NewEnv(ExtractFunction(), cel.Variable("subject.email", cel.StringType))
	if err != nil {
		t.Fatal(err)
	}
	got, err := evalBool(t, e, `subject.email.extract("{user}@") == "alice"`, map[string]any{"subject.email": "alice@example.com"})
	if err != nil || !got {
		t.Errorf("extract in a custom environment = %v, %v; want true", got, err)
	}
}
