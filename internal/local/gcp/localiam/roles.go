package localiam

import "strings"

// rolePermissions is a small table of predefined roles and the permissions
// they carry, enough for Resource Manager IAM checks. Entries are exact
// permissions, "*" (everything), "*.suffix" or "prefix.*". It is a model, not
// a copy of Google's role catalogue: roles missing here grant nothing.
var rolePermissions = map[string]struct{ grants, except []string }{
	"roles/owner": {grants: []string{"*"}},
	// Editor can change almost anything but not IAM policies.
	"roles/editor": {grants: []string{"*"}, except: []string{"*.setIamPolicy"}},
	"roles/viewer": {grants: []string{"*.get", "*.list", "*.getIamPolicy"}},
	"roles/browser": {grants: []string{
		"resourcemanager.organizations.get",
		"resourcemanager.folders.get", "resourcemanager.folders.list",
		"resourcemanager.projects.get", "resourcemanager.projects.list", "resourcemanager.projects.getIamPolicy",
	}},
	"roles/resourcemanager.projectIamAdmin": {grants: []string{
		"resourcemanager.projects.get", "resourcemanager.projects.getIamPolicy", "resourcemanager.projects.setIamPolicy",
	}},
	"roles/resourcemanager.folderIamAdmin": {grants: []string{
		"resourcemanager.folders.get", "resourcemanager.folders.getIamPolicy", "resourcemanager.folders.setIamPolicy",
	}},
	"roles/resourcemanager.organizationAdmin": {grants: []string{
		"resourcemanager.organizations.*",
		"resourcemanager.folders.get", "resourcemanager.folders.list",
		"resourcemanager.folders.getIamPolicy", "resourcemanager.folders.setIamPolicy",
		"resourcemanager.projects.get", "resourcemanager.projects.list",
		"resourcemanager.projects.getIamPolicy", "resourcemanager.projects.setIamPolicy",
	}},
	"roles/resourcemanager.organizationViewer": {grants: []string{"resourcemanager.organizations.get"}},
	"roles/resourcemanager.folderViewer":       {grants: []string{"resourcemanager.folders.get", "resourcemanager.folders.list"}},
	"roles/iam.securityAdmin":                  {grants: []string{"*.getIamPolicy", "*.setIamPolicy", "iam.roles.get", "iam.roles.list"}},
	"roles/iam.securityReviewer":               {grants: []string{"*.getIamPolicy", "iam.roles.get", "iam.roles.list"}},
}

// roleGrants reports whether role carries permission.
func roleGrants(role, permission string) bool {
	r, ok := rolePermissions[role]
	if !ok {
		return false
	}
	for _, e := range r.except {
		if permissionMatches(e, permission) {
			return false
		}
	}
	for _, g := range r.grants {
		if permissionMatches(g, permission) {
			return true
		}
	}
	return false
}

func permissionMatches(pattern, permission string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(permission, pattern[1:])
	case strings.HasSuffix(pattern, ".*"):
		return strings.HasPrefix(permission, pattern[:len(pattern)-1])
	}
	return pattern == permission
}
