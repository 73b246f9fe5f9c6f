# The only identities that may change IAM policies are the grant and
# revoke functions', through a custom role holding just the get and set
# IAM policy permissions of the scope's resource kinds, granted at the
# scope. Custom roles live in an organization or a project; a project's
# can be granted only on that project, so a folder scope uses an
# organization role and a project scope one role per project.

locals {
  writers = ["grant", "revoke"]

  org_permissions = concat(
    var.scope.grant_organization ? ["resourcemanager.organizations.getIamPolicy", "resourcemanager.organizations.setIamPolicy"] : [],
    ["resourcemanager.folders.getIamPolicy", "resourcemanager.folders.setIamPolicy"],
    ["resourcemanager.projects.getIamPolicy", "resourcemanager.projects.setIamPolicy"],
  )
  use_org_role = var.scope.grant_organization || length(var.scope.folders) > 0

  folder_grants  = { for p in setproduct(var.scope.folders, local.writers) : "${p[0]}/${p[1]}" => { folder = p[0], identity = p[1] } }
  project_grants = { for p in setproduct(var.scope.projects, local.writers) : "${p[0]}/${p[1]}" => { project = p[0], identity = p[1] } }
}

resource "google_organization_iam_custom_role" "iam_writer" {
  count       = local.use_org_role ? 1 : 0
  org_id      = var.scope.organization_id
  role_id     = "${var.prefix}IamPolicyWriter"
  title       = "JIT: read and set allow policies"
  description = "Get and set the IAM policies of the grants' resources (the grant and revoke functions only)."
  permissions = local.org_permissions
}

resource "google_project_iam_custom_role" "iam_writer" {
  for_each    = toset(var.scope.projects)
  project     = each.value
  role_id     = "${var.prefix}IamPolicyWriter"
  title       = "JIT: read and set allow policies"
  description = "Get and set the project's IAM policy (the grant and revoke functions only)."
  permissions = ["resourcemanager.projects.getIamPolicy", "resourcemanager.projects.setIamPolicy"]
}

resource "google_organization_iam_member" "iam_writer" {
  for_each = var.scope.grant_organization ? toset(local.writers) : toset([])
  org_id   = var.scope.organization_id
  role     = "organizations/${var.scope.organization_id}/roles/${google_organization_iam_custom_role.iam_writer[0].role_id}"
  member   = "serviceAccount:${local.sa[each.key]}"
}

resource "google_folder_iam_member" "iam_writer" {
  for_each = local.folder_grants
  folder   = "folders/${each.value.folder}"
  role     = "organizations/${var.scope.organization_id}/roles/${google_organization_iam_custom_role.iam_writer[0].role_id}"
  member   = "serviceAccount:${local.sa[each.value.identity]}"
}

resource "google_project_iam_member" "iam_writer" {
  for_each = local.project_grants
  project  = each.value.project
  role     = "projects/${each.value.project}/roles/${google_project_iam_custom_role.iam_writer[each.value.project].role_id}"
  member   = "serviceAccount:${local.sa[each.value.identity]}"
}
