package iamcond

import (
	"fmt"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// Env returns the cel-go environment of the attributes and functions IAM
// Conditions offer (docs/google-cloud.md §1; conditions attribute reference). It is
// built once and shared: a *cel.Env is safe for concurrent use.
//
// Only request.time, resource.name, resource.type and resource.service are
// meant to get values when evaluating; the other attributes and the tag and
// api.getAttribute functions are declared so that valid conditions compile,
// and are deliberately not implemented, so using them fails evaluation (and
// a failed condition counts as false, as in IAM).
func Env() (*cel.Env, error) {
	return env()
}

var env = sync.OnceValues(func() (*cel.Env, error) {
	str, dyn, boolean := cel.StringType, cel.DynType, cel.BoolType
	e, err := cel.NewEnv(
		cel.Variable("request.time", cel.TimestampType),
		cel.Variable("request.host", str),
		cel.Variable("request.path", str),
		cel.Variable("request.auth.access_levels", cel.ListType(str)),
		cel.Variable("destination.ip", str),
		cel.Variable("destination.port", cel.IntType),
		cel.Variable("resource.name", str),
		cel.Variable("resource.type", str),
		cel.Variable("resource.service", str),
		cel.Function("resource.matchTag", cel.Overload("resource_match_tag", []*cel.Type{str, str}, boolean)),
		cel.Function("resource.matchTagId", cel.Overload("resource_match_tag_id", []*cel.Type{str, str}, boolean)),
		cel.Function("resource.hasTagKey", cel.Overload("resource_has_tag_key", []*cel.Type{str}, boolean)),
		cel.Function("resource.hasTagKeyId", cel.Overload("resource_has_tag_key_id", []*cel.Type{str}, boolean)),
		// e.g. api.getAttribute("iam.googleapis.com/modifiedGrantsByRole", []).
		cel.Function("api.getAttribute", cel.Overload("api_get_attribute", []*cel.Type{str, dyn}, dyn)),
		HasOnlyFunction(),
		ExtractFunction(),
	)
	if err != nil {
		return nil, fmt.Errorf("failed to build the IAM condition environment: %w", err)
	}
	return e, nil
})

// ExtractFunction declares IAM's string member function
// extract(template), e.g. resource.name.extract("projects/{id}/"): the text
// between the template's prefix and suffix around its {placeholder}, or ""
// when the template does not match. JIT Groups offers it in expression
// constraints too, hence an option for other environments.
func ExtractFunction() cel.EnvOption {
	return cel.Function("extract", cel.MemberOverload("string_extract",
		[]*cel.Type{cel.StringType, cel.StringType}, cel.StringType, cel.BinaryBinding(extract)))
}

// HasOnlyFunction declares IAM's list member function hasOnly(allowed):
// true if every element of the list is in allowed.
func HasOnlyFunction() cel.EnvOption {
	return cel.Function("hasOnly", cel.MemberOverload("list_has_only",
		[]*cel.Type{cel.ListType(cel.DynType), cel.ListType(cel.DynType)}, cel.BoolType, cel.BinaryBinding(hasOnly)))
}

func extract(target, template ref.Val) ref.Val {
	s, ok1 := target.(types.String)
	t, ok2 := template.(types.String)
	if !ok1 || !ok2 {
		return types.NewErr("extract: want string arguments")
	}
	open := strings.Index(string(t), "{")
	closing := strings.Index(string(t), "}")
	if open < 0 || closing < open {
		return types.NewErr("extract: template %q has no {placeholder}", string(t))
	}
	prefix, suffix := string(t)[:open], string(t)[closing+1:]
	start := strings.Index(string(s), prefix)
	if start < 0 {
		return types.String("")
	}
	rest := string(s)[start+len(prefix):]
	if suffix == "" {
		return types.String(rest)
	}
	end := strings.Index(rest, suffix)
	if end < 0 {
		return types.String("")
	}
	return types.String(rest[:end])
}

func hasOnly(list, allowed ref.Val) ref.Val {
	l, ok1 := list.(traits.Lister)
	a, ok2 := allowed.(traits.Lister)
	if !ok1 || !ok2 {
		return types.NewErr("hasOnly: want list arguments")
	}
	it := l.Iterator()
	for it.HasNext() == types.True {
		if a.Contains(it.Next()) != types.True {
			return types.False
		}
	}
	return types.True
}
