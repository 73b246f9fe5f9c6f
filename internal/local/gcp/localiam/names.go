package localiam

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"cloud.google.com/go/iam/apiv1/iampb"
)

// kind is one of the three Resource Manager resource types that carry an
// allow policy.
type kind int

const (
	kindProject kind = iota + 1
	kindFolder
	kindOrganization
)

// collection is the first segment of the resource name.
func (k kind) collection() string {
	switch k {
	case kindProject:
		return "projects"
	case kindFolder:
		return "folders"
	case kindOrganization:
		return "organizations"
	}
	return ""
}

// permission names a Resource Manager permission on this kind, e.g.
// resourcemanager.projects.getIamPolicy (docs/google-cloud.md §2).
func (k kind) permission(verb string) string {
	return "resourcemanager." + k.collection() + "." + verb
}

// resourceType is the value of resource.type in IAM conditions.
func (k kind) resourceType() string {
	switch k {
	case kindProject:
		return "cloudresourcemanager.googleapis.com/Project"
	case kindFolder:
		return "cloudresourcemanager.googleapis.com/Folder"
	case kindOrganization:
		return "cloudresourcemanager.googleapis.com/Organization"
	}
	return ""
}

// resourceService is the value of resource.service in IAM conditions.
const resourceService = "cloudresourcemanager.googleapis.com"

func kindOf(collection string) kind {
	switch collection {
	case "projects":
		return kindProject
	case "folders":
		return kindFolder
	case "organizations":
		return kindOrganization
	}
	return 0
}

// resource is one project, folder or organization and its allow policy.
type resource struct {
	kind   kind
	id     string // project ID, or the folder or organization number
	number int64  // projects only
	parent string // canonical name of the parent; "" for organizations and projects without one
	// policy is the stored form: normalised, version 1 or 3, etag set.
	policy *iampb.Policy
}

// name is the canonical name: projects/ID, folders/N or organizations/N.
func (r *resource) name() string { return r.kind.collection() + "/" + r.id }

// conditionName is resource.name as IAM conditions see it. Resource Manager
// v3 names a project by its number (Project.name is "projects/415104041262").
func (r *resource) conditionName() string {
	if r.kind == kindProject {
		return "projects/" + strconv.FormatInt(r.number, 10)
	}
	return r.name()
}

var (
	// Project IDs: 6 to 30 lowercase letters, digits or hyphens, starting
	// with a letter, no trailing hyphen (Resource Manager Project.projectId).
	projectIDPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	numberPattern    = regexp.MustCompile(`^[1-9][0-9]{0,18}$`)
)

// splitName splits "collection/id" and checks the id's syntax for the kind.
func splitName(name string) (kind, string, error) {
	collection, id, ok := strings.Cut(name, "/")
	k := kindOf(collection)
	if !ok || k == 0 || id == "" || strings.Contains(id, "/") {
		return 0, "", fmt.Errorf("malformed resource name %q: want projects/{id}, folders/{number} or organizations/{number}", name)
	}
	switch {
	case k == kindProject && (projectIDPattern.MatchString(id) || numberPattern.MatchString(id)):
	case k != kindProject && numberPattern.MatchString(id):
	default:
		return 0, "", fmt.Errorf("malformed resource name %q", name)
	}
	return k, id, nil
}

// fullName is the resource as permission-denied messages print it.
func fullName(name string) string { return "//cloudresourcemanager.googleapis.com/" + name }
