# One service account per function, per trigger and per scheduler; none
# has a project role beyond what its work needs (docs/deploy.md, "Who may
# do what"). The tests in tests/ check these rules on the plan.

locals {
  accounts = merge(
    {
      intake    = "JIT intake function"
      approval  = "JIT approval function"
      grant     = "JIT grant function (writes IAM)"
      revoke    = "JIT revoke function (writes IAM)"
      workflow  = "JIT grant-lifecycle workflow"
      tasks     = "JIT revocation tasks (OIDC identity)"
      scheduler = "JIT sweep schedule (OIDC identity)"
      builder   = "JIT function builds"
      trg-wf    = "JIT trigger: grant.requested to the workflow"
    },
    { for k, f in local.triggered : "trg-${k}" => "JIT trigger: ${local.topics[f.topic]} to ${k}" },
  )
}

resource "google_service_account" "sa" {
  for_each     = local.accounts
  account_id   = "${var.prefix}-${each.key}"
  display_name = each.value
  depends_on   = [google_project_service.api]
}

# Firestore's IAM is project-wide: the four functions read and write the
# ledger. (The workflow, the triggers and the schedulers do not.)
resource "google_project_iam_member" "ledger" {
  for_each = toset(local.identities)
  project  = var.project
  role     = "roles/datastore.user"
  member   = "serviceAccount:${local.sa[each.key]}"
}

# Workflows has no per-workflow IAM policy (its v1 API has no
# setIamPolicy), so these custom roles are granted on the project, which
# holds only this workflow: each holds one permission.
locals {
  workflow_roles = {
    callbacks  = { id = "WorkflowCallbacks", title = "resume the grant-lifecycle workflow", permission = "workflows.callbacks.send" }
    executions = { id = "WorkflowExecutionReader", title = "confirm an execution runs a grant", permission = "workflows.executions.get" }
    starter    = { id = "WorkflowStarter", title = "start grant-lifecycle executions", permission = "workflows.executions.create" }
  }
}

resource "google_project_iam_custom_role" "workflow" {
  for_each    = local.workflow_roles
  role_id     = "${var.prefix}${each.value.id}"
  title       = "JIT: ${each.value.title}"
  description = "${each.value.permission} and nothing else."
  permissions = [each.value.permission]
  depends_on  = [google_project_service.api]
}

# Every function resumes the workflow (intake on withdraw and revoke too).
resource "google_project_iam_member" "callbacks" {
  for_each = toset(local.identities)
  project  = var.project
  role     = local.role_id.callbacks
  member   = "serviceAccount:${local.sa[each.key]}"
}

# Approval and grant confirm the execution a command names.
resource "google_project_iam_member" "executions" {
  for_each = toset(["approval", "grant"])
  project  = var.project
  role     = local.role_id.executions
  member   = "serviceAccount:${local.sa[each.key]}"
}

resource "google_project_iam_member" "workflow_trigger" {
  project = var.project
  role    = local.role_id.starter
  member  = "serviceAccount:${local.sa["trg-wf"]}"
}

# Grant and revoke create revocation tasks that carry the tasks identity's
# OIDC token: creating one needs iam.serviceAccounts.actAs on it.
resource "google_service_account_iam_member" "tasks_act_as" {
  for_each           = toset(["grant", "revoke"])
  service_account_id = local.sa_id["tasks"]
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${local.sa[each.key]}"
}

# The builds: write logs and images, read the source.
resource "google_project_iam_member" "builder_logs" {
  project = var.project
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${local.sa["builder"]}"
}

# The build runs as jit-builder and must be allowed to act as it (as
# the provider's own function example grants); on itself only, not on
# the project.
resource "google_service_account_iam_member" "builder_act_as" {
  service_account_id = local.sa_id["builder"]
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${local.sa["builder"]}"
}
