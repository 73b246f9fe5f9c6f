# The whole pipeline in one apply (docs/deploy.md). Names are derived from
# var.prefix; every URL and audience is derived from the project number and
# the region, so nothing waits for a resource to exist before it is known
# (Cloud Run's deterministic URLs, docs/google-cloud.md §12).

data "google_project" "this" {
  count      = var.project_number == "" ? 1 : 0
  project_id = var.project
}

locals {
  number = var.project_number != "" ? var.project_number : data.google_project.this[0].number

  # The topics: one kind of message each (docs/architecture.md §2).
  topics = {
    events      = "${var.prefix}-events"      # every transition: the audit trail
    lifecycle   = "${var.prefix}-lifecycle"   # grant.requested: starts the workflow
    approvals   = "${var.prefix}-approvals"   # approval.requested, from the workflow
    activations = "${var.prefix}-activations" # activation.requested, from the workflow
    revocations = "${var.prefix}-revocations" # revoke.requested, from the workflow and intake
    requests    = "${var.prefix}-requests"    # signed requests from other systems
  }

  # The four functions' identities.
  identities = ["intake", "approval", "grant", "revoke"]

  # Every deployed entry point (jit.go registers them): its Cloud Run
  # service, the function (service account) it runs as, and how it is
  # called: by people through IAP, by an Eventarc trigger on a topic, by
  # Cloud Tasks or by Cloud Scheduler.
  functions = {
    intake          = { target = "intake", identity = "intake", caller = "iap" }
    intake-requests = { target = "intakeRequests", identity = "intake", caller = "trigger", topic = "requests" }
    approval        = { target = "approval", identity = "approval", caller = "iap" }
    approval-events = { target = "approvalEvents", identity = "approval", caller = "trigger", topic = "approvals" }
    approval-notify = { target = "approvalNotify", identity = "approval", caller = "trigger", topic = "events" }
    grant           = { target = "grant", identity = "grant", caller = "trigger", topic = "activations" }
    revoke          = { target = "revoke", identity = "revoke", caller = "trigger", topic = "revocations" }
    revoke-task     = { target = "revokeTask", identity = "revoke", caller = "tasks" }
    sweep           = { target = "sweep", identity = "revoke", caller = "scheduler" }
  }
  triggered = { for k, f in local.functions : k => f if f.caller == "trigger" }
  people    = { for k, f in local.functions : k => f if f.caller == "iap" }

  service = { for k, f in local.functions : k => "${var.prefix}-${k}" }
  # https://SERVICE-NUMBER.REGION.run.app, known before the service exists.
  url = { for k, f in local.functions : k => "https://${local.service[k]}-${local.number}.${var.region}.run.app" }
  # IAP's audience for a Cloud Run service (docs/google-cloud.md §7).
  iap_audience = { for k, f in local.people : k => "/projects/${local.number}/locations/${var.region}/services/${local.service[k]}" }

  workflow = "projects/${var.project}/locations/${var.region}/workflows/${var.prefix}-grant-lifecycle"
  queue    = "projects/${var.project}/locations/${var.region}/queues/${var.prefix}-revocations"
  # Through the resources, so that what names them waits for them.
  policy_secret = "projects/${var.project}/secrets/${google_secret_manager_secret.policy.secret_id}"
  link_secret   = "projects/${var.project}/secrets/${google_secret_manager_secret.link_keys.secret_id}"
  smtp_secret   = "projects/${var.project}/secrets/${var.prefix}-smtp-password"

  source_archive = var.source_archive != "" ? var.source_archive : "${path.module}/../build/function-source.zip"
  base_image     = var.base_image != "" ? var.base_image : "${var.region}-docker.pkg.dev/serverless-runtimes/google-24/runtimes/go126"

  firestore_location = var.firestore.location != "" ? var.firestore.location : var.region

  # Identities and names by their known values (never a computed
  # attribute), each read through the resource so that what uses it is
  # created after it: the plan knows every member and setting, which the
  # tests and the environment check of docs/deploy.md rely on.
  sa_email = { for k in keys(local.accounts) : k => "${var.prefix}-${k}@${var.project}.iam.gserviceaccount.com" }
  sa       = { for k, v in google_service_account.sa : k => local.sa_email[k] }
  sa_id    = { for k, v in google_service_account.sa : k => "projects/${var.project}/serviceAccounts/${local.sa_email[k]}" }
  topic_id = { for k, v in google_pubsub_topic.topic : k => "projects/${var.project}/topics/${v.name}" }
  role_id  = { for k, r in google_project_iam_custom_role.workflow : k => "projects/${var.project}/roles/${r.role_id}" }
}

# The APIs the pipeline uses. Left enabled on destroy: other things in the
# project may use them too.
resource "google_project_service" "api" {
  for_each = toset([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudidentity.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtasks.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "iap.googleapis.com",
    "logging.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
    "workflowexecutions.googleapis.com",
    "workflows.googleapis.com",
  ])
  service            = each.value
  disable_on_destroy = false
}
