package policy

import (
	"fmt"
	"strings"
)

// Permission is a set of access rights, as bit masks compatible with JIT
// Groups (docs/jit-access.md §3.3): every right but ALL includes VIEW, so
// denying JOIN also denies VIEW.
type Permission uint32

const (
	View          Permission = 1
	Join          Permission = 3  // View | 2
	ApproveOthers Permission = 5  // View | 4
	ApproveSelf   Permission = 9  // View | 8; effective only together with Join
	Export        Permission = 17 // View | 16
	Reconcile     Permission = 33 // View | 32
	// RequestOnBehalf is ours: a service account (another system: incident
	// tooling, a ticketing bot) may publish signed requests on behalf of
	// users, each of whom must still be allowed to JOIN.
	RequestOnBehalf Permission = 65 // View | 64
	All             Permission = 0x7FFFFFFF
)

var permissionNames = []struct {
	name string
	p    Permission
}{
	{"VIEW", View}, {"JOIN", Join}, {"APPROVE_OTHERS", ApproveOthers}, {"APPROVE_SELF", ApproveSelf},
	{"EXPORT", Export}, {"RECONCILE", Reconcile}, {"REQUEST_ON_BEHALF", RequestOnBehalf}, {"ALL", All},
}

// ParsePermissions reads a comma-separated list such as "JOIN, APPROVE_SELF"
// (trimmed, case-insensitive, empty items skipped).
func ParsePermissions(s string) (Permission, error) {
	var mask Permission
	any := false
	for _, item := range strings.Split(s, ",") {
		item = strings.ToUpper(strings.TrimSpace(item))
		if item == "" {
			continue
		}
		found := false
		for _, pn := range permissionNames {
			if pn.name == item {
				mask |= pn.p
				found, any = true, true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown permission %q (want VIEW, JOIN, APPROVE_SELF, APPROVE_OTHERS, EXPORT, RECONCILE, REQUEST_ON_BEHALF or ALL)", item)
		}
	}
	if !any {
		return 0, fmt.Errorf("no permission given")
	}
	return mask, nil
}

// String lists the named permissions the mask contains.
func (p Permission) String() string {
	if p == All {
		return "ALL"
	}
	var names []string
	for _, pn := range permissionNames[1:] { // VIEW is implied by the others
		if pn.p != All && p&pn.p == pn.p {
			names = append(names, pn.name)
		}
	}
	if len(names) == 0 && p&View != 0 {
		names = append(names, "VIEW")
	}
	return strings.Join(names, ", ")
}
