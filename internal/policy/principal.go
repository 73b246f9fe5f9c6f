package policy

import (
	"fmt"
	"strings"

	"github.com/jitpipeline/jit/internal/emailaddr"
	"github.com/jitpipeline/jit/internal/lazyregexp"
)

// PrincipalType is the kind of an ACL principal.
type PrincipalType string

const (
	UserPrincipal   PrincipalType = "user"
	GroupPrincipal  PrincipalType = "group"
	DomainPrincipal PrincipalType = "domain"
	ClassPrincipal  PrincipalType = "class"
	// ServiceAccountPrincipal appears only with REQUEST_ON_BEHALF (ours).
	ServiceAccountPrincipal PrincipalType = "serviceAccount"
)

// The user classes of JIT Groups (docs/jit-access.md §3.3).
const (
	ClassIAPUsers      = "iapUsers"
	ClassInternalUsers = "internalUsers"
	ClassExternalUsers = "externalUsers"
)

// Principal is an ACL principal: user:EMAIL, group:EMAIL, domain:DOMAIN or
// class:iapUsers|internalUsers|externalUsers. Emails and domains are kept
// lower-case, so principals compare with ==.
type Principal struct {
	Type  PrincipalType
	Value string
}

func (p Principal) String() string { return string(p.Type) + ":" + p.Value }

var domainRE = lazyregexp.New(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)

// ParsePrincipal reads an ACL principal. serviceAccount: principals are
// refused, as in JIT Groups; the policy parser admits them only for
// REQUEST_ON_BEHALF (parseACLPrincipal). Emails must be canonical
// (package emailaddr) and are only ASCII-lower-cased: a principal is never
// trimmed or folded into another's address. Only ASCII blanks around the
// whole principal are ignored.
func ParsePrincipal(s string) (Principal, error) {
	typ, value, ok := strings.Cut(strings.Trim(s, " \t"), ":")
	if !ok || value == "" {
		return Principal{}, fmt.Errorf("principal %q must be user:EMAIL, group:EMAIL, domain:DOMAIN or class:CLASS", s)
	}
	switch pt := PrincipalType(emailaddr.Key(typ)); pt {
	case UserPrincipal, GroupPrincipal:
		email, err := emailaddr.Canonical(value)
		if err != nil {
			return Principal{}, fmt.Errorf("principal %q: %q is not an email address in canonical form: %w", s, value, err)
		}
		return Principal{Type: pt, Value: email}, nil
	case DomainPrincipal:
		v := emailaddr.Key(value)
		if !domainRE.MatchString(v) {
			return Principal{}, fmt.Errorf("principal %q: %q is not a domain name", s, value)
		}
		return Principal{Type: DomainPrincipal, Value: v}, nil
	case ClassPrincipal:
		for _, c := range []string{ClassIAPUsers, ClassInternalUsers, ClassExternalUsers} {
			if emailaddr.Key(value) == emailaddr.Key(c) {
				return Principal{Type: ClassPrincipal, Value: c}, nil
			}
		}
		return Principal{}, fmt.Errorf("principal %q: unknown class (want iapUsers, internalUsers or externalUsers)", s)
	default:
		return Principal{}, fmt.Errorf("principal %q: unsupported type %q (want user, group, domain or class)", s, typ)
	}
}

// parseServiceAccount reads serviceAccount:EMAIL.
func parseServiceAccount(s string) (Principal, bool) {
	typ, value, ok := strings.Cut(strings.Trim(s, " \t"), ":")
	if !ok || typ != string(ServiceAccountPrincipal) {
		return Principal{}, false
	}
	email, err := emailaddr.Canonical(value)
	if err != nil {
		return Principal{}, false
	}
	return Principal{Type: ServiceAccountPrincipal, Value: email}, true
}

// NewServiceSubject is a calling system, for REQUEST_ON_BEHALF checks: its
// only principal is serviceAccount:EMAIL.
func NewServiceSubject(email string) Subject {
	p := Principal{Type: ServiceAccountPrincipal, Value: emailaddr.Key(email)}
	return Subject{Email: p.Value, Principals: []Principal{p}, keys: map[Principal]bool{p: true}}
}

// Subject is who is asking: a user, the groups they belong to (transitive,
// from a groups resolver) and whether their account is in the
// organization's own domains. Build it with NewSubject.
type Subject struct {
	Email      string
	Principals []Principal
	keys       map[Principal]bool
}

// NewSubject lists a user's principals: user:EMAIL, group:G for each group,
// domain:DOMAIN of the email, class:iapUsers (everyone who reaches the
// service came through IAP or the local equivalent) and class:internalUsers
// or class:externalUsers.
func NewSubject(email string, groups []string, internal bool) Subject {
	// ASCII case only: callers pass canonical addresses, and anything else
	// keeps its odd bytes and so matches nobody's principal.
	email = emailaddr.Key(email)
	s := Subject{Email: email}
	s.Principals = append(s.Principals, Principal{UserPrincipal, email})
	for _, g := range groups {
		s.Principals = append(s.Principals, Principal{GroupPrincipal, emailaddr.Key(g)})
	}
	if _, dom, ok := strings.Cut(email, "@"); ok {
		s.Principals = append(s.Principals, Principal{DomainPrincipal, dom})
	}
	s.Principals = append(s.Principals, Principal{ClassPrincipal, ClassIAPUsers})
	if internal {
		s.Principals = append(s.Principals, Principal{ClassPrincipal, ClassInternalUsers})
	} else {
		s.Principals = append(s.Principals, Principal{ClassPrincipal, ClassExternalUsers})
	}
	s.keys = make(map[Principal]bool, len(s.Principals))
	for _, p := range s.Principals {
		s.keys[p] = true
	}
	return s
}

// Has reports whether p is one of the subject's principals.
func (s Subject) Has(p Principal) bool { return s.keys[p] }

// PrincipalStrings are the principals as strings, for CEL's subject.principals.
func (s Subject) PrincipalStrings() []string {
	out := make([]string, len(s.Principals))
	for i, p := range s.Principals {
		out[i] = p.String()
	}
	return out
}
