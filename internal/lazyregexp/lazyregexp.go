// Package lazyregexp is a regular expression compiled on its first use
// rather than at package initialisation, as cmd/go's internal/lazyregexp
// does. Every deployed function links every function's packages, so a
// package-level regexp.MustCompile costs each of them at start, used or
// not; bounded repetitions ({1,128}) make the compiled programs large
// (issue 14: the domain's regular expressions were a third of the
// functions' own start-up allocations).
//
// A bad pattern is still found before it ships: in a test binary New
// compiles at once, so any test of the package that declares it panics.
package lazyregexp

import (
	"os"
	"regexp"
	"strings"
	"sync"
)

// Regexp is a regexp.Regexp compiled on first use, safe for concurrent use.
type Regexp struct {
	compile func() *regexp.Regexp
}

// New returns the lazily compiled expr; compiling it panics, on first
// use, if expr does not parse (regexp.MustCompile).
func New(expr string) *Regexp {
	r := &Regexp{compile: sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })}
	if inTest {
		r.compile()
	}
	return r
}

// inTest is whether this is a test binary (go test names it *.test).
var inTest = strings.HasSuffix(os.Args[0], ".test")

// MatchString reports whether s contains any match of the expression.
func (r *Regexp) MatchString(s string) bool { return r.compile().MatchString(s) }

// FindStringSubmatch is regexp.Regexp.FindStringSubmatch.
func (r *Regexp) FindStringSubmatch(s string) []string { return r.compile().FindStringSubmatch(s) }

// String is the source text of the expression.
func (r *Regexp) String() string { return r.compile().String() }
