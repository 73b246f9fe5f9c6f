package localiam

import (
	"testing"
	"time"
)

// docs/google-cloud.md §1 Limits: at most 12 logical operators (&&, ||, !) per
// condition; operators inside string literals are text, not operators.
func TestCountLogicalOperators(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expression string
		want       int
	}{
		{`true`, 0},
		{`a && b || !c`, 3},
		{`a != b`, 0},
		{`!(a) && !!b`, 4},
		{`"&&" == x || '||' == y`, 1},
		{`"a \" && b" == x`, 0},
		{`"""&& || !""" == x && y`, 1},
		{`r"\" && x`, 1},
	} {
		if got := countLogicalOperators(tc.expression); got != tc.want {
			t.Errorf("countLogicalOperators(%q) = %d, want %d", tc.expression, got, tc.want)
		}
	}
}

// IAM's extract() returns the text between the template's prefix and
// suffix, or "" if the template does not match (conditions attribute
// reference); request.time and resource.* are bound at evaluation.
func TestConditionEvaluation(t *testing.T) {
	t.Parallel()
	c, err := newConditions()
	if err != nil {
		t.Fatal(err)
	}
	ec := evalContext{at: time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC), resourceName: "projects/1001", resourceType: kindProject.resourceType()}
	for _, tc := range []struct {
		expression string
		want       bool
	}{
		{`"projects/p1/buckets/b".extract("projects/{p}/") == "p1"`, true},
		{`"projects/p1".extract("projects/{p}") == "p1"`, true},
		{`"folders/1".extract("projects/{p}/") == ""`, true},
		{`request.time.getHours() == 10`, true},
		{`request.time.getHours("Europe/Berlin") == 11`, true},
		{`resource.service == "cloudresourcemanager.googleapis.com"`, true},
		{`resource.type == "cloudresourcemanager.googleapis.com/Project" && resource.name == "projects/1001"`, true},
		{`request.host == "x"`, false}, // no value here: cannot be evaluated
		{`api.getAttribute("iam.googleapis.com/modifiedGrantsByRole", []).hasOnly(["roles/x"])`, false},
		{`[1, 2].hasOnly([1, 2, 3])`, true},
		{`[1, 4].hasOnly([1, 2, 3])`, false},
		{`has({}.jitAccessConstraint)`, false},
	} {
		if got := c.eval(tc.expression, ec); got != tc.want {
			t.Errorf("eval(%s) = %v, want %v", tc.expression, got, tc.want)
		}
	}
}
