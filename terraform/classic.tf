# Classic mode (JIT Access 1.x's eligible bindings, docs/deploy.md): the
# functions that decide on entitlements list the classic scope's folders
# and projects and read their IAM policies, so those three identities get
# a read-only custom role at the scope. Revoke only removes what was
# granted and gets neither the role nor the settings. The role is built
# as scope.tf builds the writer: an organization role for organization
# and folder entries (folder permissions cannot be in a project role),
# one role per project for project entries, which need no listing.

locals {
  classic_readers = var.classic == null ? [] : ["intake", "approval", "grant"]

  classic_scope = var.classic == null ? [] : distinct(var.classic.scope != null ? var.classic.scope : (
    var.scope.grant_organization ? ["organizations/${var.scope.organization_id}"] :
    concat([for f in var.scope.folders : "folders/${f}"], [for p in var.scope.projects : "projects/${p}"])
  ))
  classic_orgs     = [for r in local.classic_scope : trimprefix(r, "organizations/") if startswith(r, "organizations/")]
  classic_folders  = [for r in local.classic_scope : r if startswith(r, "folders/")]
  classic_projects = [for r in local.classic_scope : trimprefix(r, "projects/") if startswith(r, "projects/")]

  # Unset options are left out, so the functions' defaults apply.
  classic_env = var.classic == null ? {} : {
    for k, v in {
      RESOURCE_SCOPE                   = join(",", local.classic_scope)
      ACTIVATION_TIMEOUT               = var.classic.activation_timeout
      JUSTIFICATION_PATTERN            = var.classic.justification_pattern
      JUSTIFICATION_HINT               = var.classic.justification_hint
      ACTIVATION_REQUEST_MAX_ROLES     = var.classic.max_roles
      ACTIVATION_REQUEST_TIMEOUT       = var.classic.request_timeout
      ACTIVATION_REQUEST_MIN_REVIEWERS = var.classic.min_reviewers
      ACTIVATION_REQUEST_MAX_REVIEWERS = var.classic.max_reviewers
      JIT_CATALOG_MAX_AGE              = var.classic.cache_max_age
      JIT_CATALOG_READS_PER_SECOND     = var.classic.reads_per_second
    } : k => tostring(v) if v != null && v != ""
  }

  reader_org_role = length(local.classic_orgs) + length(local.classic_folders) > 0
  reader_org_permissions = concat(
    length(local.classic_orgs) > 0 ? ["resourcemanager.organizations.getIamPolicy"] : [],
    ["resourcemanager.folders.list", "resourcemanager.folders.getIamPolicy"],
    ["resourcemanager.projects.list", "resourcemanager.projects.getIamPolicy"],
  )

  reader_org_grants     = { for p in setproduct(local.classic_orgs, local.classic_readers) : "${p[0]}/${p[1]}" => { org = p[0], identity = p[1] } }
  reader_folder_grants  = { for p in setproduct(local.classic_folders, local.classic_readers) : "${p[0]}/${p[1]}" => { folder = p[0], identity = p[1] } }
  reader_project_grants = { for p in setproduct(local.classic_projects, local.classic_readers) : "${p[0]}/${p[1]}" => { project = p[0], identity = p[1] } }
}

resource "google_organization_iam_custom_role" "scope_reader" {
  count       = local.reader_org_role ? 1 : 0
  org_id      = var.scope.organization_id
  role_id     = "${var.prefix}ScopeReader"
  title       = "JIT: list the scope and read allow policies"
  description = "List folders and projects and get their IAM policies (the intake, approval and grant functions in classic mode only)."
  permissions = local.reader_org_permissions
}

resource "google_project_iam_custom_role" "scope_reader" {
  for_each    = toset(local.classic_projects)
  project     = each.value
  role_id     = "${var.prefix}ScopeReader"
  title       = "JIT: read the allow policy"
  description = "Get the project's IAM policy (the intake, approval and grant functions in classic mode only)."
  permissions = ["resourcemanager.projects.getIamPolicy"]
}

resource "google_organization_iam_member" "scope_reader" {
  for_each = local.reader_org_grants
  org_id   = each.value.org
  role     = "organizations/${var.scope.organization_id}/roles/${google_organization_iam_custom_role.scope_reader[0].role_id}"
  member   = "serviceAccount:${local.sa[each.value.identity]}"
}

resource "google_folder_iam_member" "scope_reader" {
  for_each = local.reader_folder_grants
  folder   = each.value.folder
  role     = "organizations/${var.scope.organization_id}/roles/${google_organization_iam_custom_role.scope_reader[0].role_id}"
  member   = "serviceAccount:${local.sa[each.value.identity]}"
}

resource "google_project_iam_member" "scope_reader" {
  for_each = local.reader_project_grants
  project  = each.value.project
  role     = "projects/${each.value.project}/roles/${google_project_iam_custom_role.scope_reader[each.value.project].role_id}"
  member   = "serviceAccount:${local.sa[each.value.identity]}"
}
