package localiam

import (
	"context"
	"strings"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/resourcemanager/apiv3/resourcemanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The three services share one implementation; only the resource kind
// differs. Everything but the IAM methods stays Unimplemented.
type projectsServer struct {
	resourcemanagerpb.UnimplementedProjectsServer
	s *Server
}

func (p projectsServer) GetIamPolicy(ctx context.Context, req *iampb.GetIamPolicyRequest) (*iampb.Policy, error) {
	return p.s.getIamPolicy(ctx, kindProject, req)
}

func (p projectsServer) SetIamPolicy(ctx context.Context, req *iampb.SetIamPolicyRequest) (*iampb.Policy, error) {
	return p.s.setIamPolicy(ctx, kindProject, req)
}

func (p projectsServer) TestIamPermissions(ctx context.Context, req *iampb.TestIamPermissionsRequest) (*iampb.TestIamPermissionsResponse, error) {
	return p.s.testIamPermissions(ctx, kindProject, req)
}

type foldersServer struct {
	resourcemanagerpb.UnimplementedFoldersServer
	s *Server
}

func (f foldersServer) GetIamPolicy(ctx context.Context, req *iampb.GetIamPolicyRequest) (*iampb.Policy, error) {
	return f.s.getIamPolicy(ctx, kindFolder, req)
}

func (f foldersServer) SetIamPolicy(ctx context.Context, req *iampb.SetIamPolicyRequest) (*iampb.Policy, error) {
	return f.s.setIamPolicy(ctx, kindFolder, req)
}

func (f foldersServer) TestIamPermissions(ctx context.Context, req *iampb.TestIamPermissionsRequest) (*iampb.TestIamPermissionsResponse, error) {
	return f.s.testIamPermissions(ctx, kindFolder, req)
}

type organizationsServer struct {
	resourcemanagerpb.UnimplementedOrganizationsServer
	s *Server
}

func (o organizationsServer) GetIamPolicy(ctx context.Context, req *iampb.GetIamPolicyRequest) (*iampb.Policy, error) {
	return o.s.getIamPolicy(ctx, kindOrganization, req)
}

func (o organizationsServer) SetIamPolicy(ctx context.Context, req *iampb.SetIamPolicyRequest) (*iampb.Policy, error) {
	return o.s.setIamPolicy(ctx, kindOrganization, req)
}

func (o organizationsServer) TestIamPermissions(ctx context.Context, req *iampb.TestIamPermissionsRequest) (*iampb.TestIamPermissionsResponse, error) {
	return o.s.testIamPermissions(ctx, kindOrganization, req)
}

// resolve finds the resource a request names, which must be of kind k.
// Unknown resources are PERMISSION_DENIED, indistinguishable from a missing
// permission, as on the real service (docs/google-cloud.md §2).
func (s *Server) resolve(k kind, name, permission string) (*resource, []*iampb.Binding, evalContext, error) {
	rk, _, err := splitName(name)
	if err != nil || rk != k {
		return nil, nil, evalContext{}, invalid("Invalid resource name %q for the %s service: want %s/{id}.", name, k.collection(), k.collection())
	}
	s.mu.RLock()
	r := s.lookupLocked(name)
	var bindings []*iampb.Binding
	if r != nil {
		bindings = s.effectiveLocked(r)
	}
	s.mu.RUnlock()
	if r == nil {
		return nil, nil, evalContext{}, denied(permission, name)
	}
	ec := evalContext{at: s.cfg.Now(), resourceName: r.conditionName(), resourceType: k.resourceType()}
	return r, bindings, ec, nil
}

func denied(permission, name string) error {
	return status.Errorf(codes.PermissionDenied, "Permission '%s' denied on resource '%s' (or it may not exist).", permission, fullName(name))
}

// authorize resolves the resource and checks that the caller holds
// permission on it. The local operator (no principal) may do anything.
func (s *Server) authorize(ctx context.Context, k kind, name, verb string) (*resource, error) {
	return s.authorizeFor(ctx, k, name, k.permission(verb))
}

// authorizeFor is authorize with the permission spelled out, for methods
// checked on another kind of resource than theirs (listing projects is
// resourcemanager.projects.list on the parent folder or organization).
func (s *Server) authorizeFor(ctx context.Context, k kind, name, permission string) (*resource, error) {
	r, bindings, ec, err := s.resolve(k, name, permission)
	if err != nil {
		return nil, err
	}
	principal, err := callerOf(ctx)
	if err != nil || principal == "" {
		return r, err
	}
	held, err := s.permitted(ctx, principal, bindings, ec, []string{permission})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "failed to check %s: %v", permission, err)
	}
	if len(held) == 0 {
		return nil, denied(permission, name)
	}
	return r, nil
}

// callerOf returns the canonical caller principal, "" for the operator.
func callerOf(ctx context.Context) (string, error) {
	raw := PrincipalFromIncoming(ctx)
	if raw == "" {
		return "", nil
	}
	p, err := canonicalPrincipal(raw)
	if err != nil {
		return "", status.Errorf(codes.Unauthenticated, "invalid %s: %v", PrincipalKey, err)
	}
	return p, nil
}

func (s *Server) getIamPolicy(ctx context.Context, k kind, req *iampb.GetIamPolicyRequest) (*iampb.Policy, error) {
	r, err := s.authorize(ctx, k, req.GetResource(), "getIamPolicy")
	if err != nil {
		return nil, err
	}
	v := req.GetOptions().GetRequestedPolicyVersion()
	if v != 0 && v != 1 && v != 3 {
		// options.pb.go: valid values are 0, 1 and 3.
		return nil, invalid("Invalid requested policy version %d: valid values are 0, 1 and 3.", v)
	}
	s.mu.RLock()
	stored := r.policy
	s.mu.RUnlock()
	return formatPolicy(stored, v), nil
}

func (s *Server) setIamPolicy(ctx context.Context, k kind, req *iampb.SetIamPolicyRequest) (*iampb.Policy, error) {
	r, err := s.authorize(ctx, k, req.GetResource(), "setIamPolicy")
	if err != nil {
		return nil, err
	}
	if req.GetPolicy() == nil {
		return nil, invalid("The request has no policy.")
	}
	m := defaultMask()
	if paths := req.GetUpdateMask().GetPaths(); len(paths) > 0 {
		m = mask{}
		for _, p := range paths {
			switch strings.TrimSpace(p) {
			case "bindings":
				m.bindings = true
			case "audit_configs", "auditConfigs":
				m.auditConfigs = true
			case "etag", "version":
				// The etag is checked whenever it is sent; the version is
				// derived from the bindings.
			default:
				return nil, invalid("Invalid update_mask path %q: want bindings, etag or audit_configs.", p)
			}
		}
	}
	np, err := s.checkPolicy(req.GetPolicy(), k)
	if err != nil {
		return nil, err
	}
	return s.commit(r, req.GetPolicy(), np, m, false)
}

func (s *Server) testIamPermissions(ctx context.Context, k kind, req *iampb.TestIamPermissionsRequest) (*iampb.TestIamPermissionsResponse, error) {
	for _, p := range req.GetPermissions() {
		if !validPermission(p) {
			return nil, invalid("Permission %q is not valid.", p)
		}
	}
	_, bindings, ec, err := s.resolve(k, req.GetResource(), k.permission("get"))
	if err != nil {
		return nil, err
	}
	// TestIamPermissions needs no permission itself (docs/google-cloud.md §2).
	principal, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	if principal == "" {
		return &iampb.TestIamPermissionsResponse{Permissions: dedupe(req.GetPermissions())}, nil
	}
	held, err := s.permitted(ctx, principal, bindings, ec, dedupe(req.GetPermissions()))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "failed to test permissions: %v", err)
	}
	return &iampb.TestIamPermissionsResponse{Permissions: held}, nil
}

// validPermission accepts service.resource.verb names without wildcards.
func validPermission(p string) bool {
	parts := strings.Split(p, ".")
	if len(parts) < 3 {
		return false
	}
	for _, part := range parts {
		if part == "" || strings.ContainsAny(part, "*/ :") {
			return false
		}
	}
	return true
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
