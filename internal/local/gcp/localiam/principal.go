package localiam

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/jitpipeline/jit/internal/emailaddr"
)

// PrincipalKey is the gRPC metadata key that carries the caller's principal
// (e.g. "serviceAccount:grant@p.iam.gserviceaccount.com") to the local
// fakes. Real Google APIs derive it from the OAuth token; locally there is no
// token, so each embedded function stamps its own identity here.
const PrincipalKey = "x-local-principal"

// WithPrincipal returns a context whose outgoing gRPC calls act as principal.
func WithPrincipal(ctx context.Context, principal string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, PrincipalKey, principal)
}

// UnaryClientInterceptor stamps principal on every call of the client it is
// installed in, replacing any principal already on the context, so that an
// embedded function cannot act as another one. Install it with
// option.WithGRPCDialOption(grpc.WithUnaryInterceptor(...)).
func UnaryClientInterceptor(principal string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		md, _ := metadata.FromOutgoingContext(ctx)
		md = md.Copy()
		md.Set(PrincipalKey, principal)
		return invoker(metadata.NewOutgoingContext(ctx, md), method, req, reply, cc, opts...)
	}
}

// PrincipalFromIncoming is the caller's principal on a server-side context,
// or "" for the local operator (no principal: allowed everything).
func PrincipalFromIncoming(ctx context.Context) string {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ""
	}
	v := md.Get(PrincipalKey)
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// Member prefixes whose value is an email address or a domain; IAM compares
// these case-insensitively and stores them in lower case.
var emailKinds = []string{"user:", "serviceAccount:", "group:"}

// canonicalMember validates one binding member and returns its stored form.
// Accepted forms are those of Binding.members (docs/google-cloud.md §1).
func canonicalMember(m string) (string, error) {
	switch m {
	case "allUsers", "allAuthenticatedUsers":
		return m, nil
	}
	if strings.HasPrefix(m, "principal://") || strings.HasPrefix(m, "principalSet://") {
		if len(m) <= len("principalSet://") {
			return "", fmt.Errorf("invalid member %q", m)
		}
		return m, nil
	}
	typ, value, ok := strings.Cut(m, ":")
	if !ok || value == "" {
		return "", fmt.Errorf("policy members must be of the form \"<type>:<value>\", got %q", m)
	}
	switch typ {
	case "user", "group":
		if !emailaddr.Valid(value) {
			return "", fmt.Errorf("invalid member %q: not an email address", m)
		}
		return typ + ":" + emailaddr.Key(value), nil
	case "serviceAccount":
		if !emailaddr.Valid(value) || !strings.HasSuffix(emailaddr.Key(value), ".gserviceaccount.com") {
			return "", fmt.Errorf("invalid member %q: not a service account email", m)
		}
		return typ + ":" + emailaddr.Key(value), nil
	case "domain":
		if emailaddr.CheckDomain(value) != nil {
			return "", fmt.Errorf("invalid member %q: not a domain", m)
		}
		return typ + ":" + emailaddr.Key(value), nil
	case "deleted":
		// deleted:user:EMAIL?uid=ID, deleted:serviceAccount:…, deleted:group:…
		inner, uid, ok := strings.Cut(value, "?uid=")
		if !ok || uid == "" {
			return "", fmt.Errorf("invalid member %q: want deleted:<type>:<email>?uid=<id>", m)
		}
		c, err := canonicalMember(inner)
		if err != nil || !hasEmailKind(c) {
			return "", fmt.Errorf("invalid member %q", m)
		}
		return "deleted:" + c + "?uid=" + uid, nil
	}
	return "", fmt.Errorf("invalid member type in %q", m)
}

func hasEmailKind(m string) bool {
	for _, p := range emailKinds {
		if strings.HasPrefix(m, p) {
			return true
		}
	}
	return false
}

// canonicalPrincipal validates a caller or HasRole principal: one concrete
// identity (user, serviceAccount or group).
func canonicalPrincipal(p string) (string, error) {
	c, err := canonicalMember(p)
	if err != nil {
		return "", err
	}
	if !hasEmailKind(c) {
		return "", fmt.Errorf("principal %q is not a user:, serviceAccount: or group: identity", p)
	}
	return c, nil
}
