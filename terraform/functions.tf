# The functions: one Cloud Run function (a Cloud Run service built from
# source by Cloud Build with the Go buildpack) per entry point of jit.go,
# all from the same archive, each with its entry point (FUNCTION_TARGET),
# its function's service account and only that function's settings.

resource "google_storage_bucket" "source" {
  name                        = "${var.project}-${var.prefix}-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection
  depends_on                  = [google_project_service.api]
}

# Named by content: a changed archive is a new object, hence a new build
# and revision of every function; an unchanged one changes nothing.
resource "google_storage_bucket_object" "source" {
  name   = "function-source-${filemd5(local.source_archive)}.zip"
  bucket = google_storage_bucket.source.name
  source = local.source_archive
}

resource "google_storage_bucket_iam_member" "builder_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${local.sa["builder"]}"
}

resource "google_artifact_registry_repository" "functions" {
  repository_id = "${var.prefix}-functions"
  location      = var.region
  format        = "DOCKER"
  description   = "Images of the JIT functions, built from source."
  depends_on    = [google_project_service.api]
}

resource "google_artifact_registry_repository_iam_member" "builder_images" {
  repository = google_artifact_registry_repository.functions.repository_id
  location   = var.region
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${local.sa["builder"]}"
}

locals {
  # What every function reads (internal/deploy.Config).
  common_env = {
    JIT_PROJECT          = var.project
    JIT_POLICY           = "secretmanager:${local.policy_secret}"
    JIT_WORKFLOW         = local.workflow
    JIT_EVENTS_TOPIC     = local.topics.events
    JIT_LIFECYCLE_TOPIC  = local.topics.lifecycle
    JIT_REVOKE_TOPIC     = local.topics.revocations
    JIT_INTERNAL_DOMAINS = join(",", var.internal_domains)
  }
  # Grant and revoke schedule and serve the revocation tasks.
  tasks_env = {
    JIT_REVOKE_QUEUE          = local.queue
    JIT_REVOKE_URL            = local.url["revoke-task"]
    JIT_TASKS_SERVICE_ACCOUNT = local.sa_email["tasks"]
  }
  approval_env = merge(
    {
      JIT_PAGES_URL     = local.url["approval"]
      JIT_MAIL_FROM     = var.mail.from
      JIT_SMTP_HOST     = var.mail.host
      JIT_SMTP_SECURITY = var.mail.security
      JIT_LINK_SECRET   = local.link_secret
    },
    var.mail.port != null ? { JIT_SMTP_PORT = tostring(var.mail.port) } : {},
    var.mail.username != "" ? { JIT_SMTP_USERNAME = var.mail.username, JIT_SMTP_PASSWORD_SECRET = "${local.smtp_secret}/versions/latest" } : {},
  )
  identity_env = {
    intake   = { JIT_PAGES_URL = local.url["approval"] } # the inbox links to the approval pages
    approval = local.approval_env
    grant    = local.tasks_env
    revoke   = local.tasks_env
  }
  env = {
    for k, f in local.functions : k => merge(
      local.common_env,
      local.identity_env[f.identity],
      contains(local.classic_readers, f.identity) ? local.classic_env : {},
      f.caller == "iap" ? { JIT_IAP_AUDIENCES = local.iap_audience[k] } : {},
      k == "sweep" ? { JIT_SWEEP_URL = local.url["sweep"], JIT_SCHEDULER_SERVICE_ACCOUNT = local.sa_email["scheduler"] } : {},
      { FUNCTION_TARGET = f.target },
    )
  }
}

resource "google_cloud_run_v2_service" "fn" {
  for_each = local.functions
  name     = local.service[each.key]
  location = var.region
  # People come from the internet through IAP; every other caller (Eventarc,
  # Pub/Sub, Cloud Tasks, Cloud Scheduler) is internal to the project
  # (docs/google-cloud.md §12).
  ingress             = each.value.caller == "iap" ? "INGRESS_TRAFFIC_ALL" : "INGRESS_TRAFFIC_INTERNAL_ONLY"
  iap_enabled         = each.value.caller == "iap"
  deletion_protection = var.deletion_protection

  build_config {
    source_location          = "gs://${google_storage_bucket.source.name}/${google_storage_bucket_object.source.name}"
    function_target          = each.value.target
    image_uri                = "${var.region}-docker.pkg.dev/${var.project}/${var.prefix}-functions/${local.service[each.key]}"
    base_image               = local.base_image
    enable_automatic_updates = true
    service_account          = local.sa_id["builder"]
  }

  template {
    service_account = local.sa[each.value.identity]
    containers {
      image          = "${var.region}-docker.pkg.dev/${var.project}/${var.prefix}-functions/${local.service[each.key]}"
      base_image_uri = local.base_image
      dynamic "env" {
        for_each = local.env[each.key]
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }

  lifecycle {
    # Cloud Run pins the image it built by digest.
    ignore_changes = [template[0].containers[0].image, client, client_version]
  }

  depends_on = [
    google_project_iam_member.builder_logs,
    google_service_account_iam_member.builder_act_as,
    google_storage_bucket_iam_member.builder_source,
    google_artifact_registry_repository_iam_member.builder_images,
    google_secret_manager_secret_iam_member.policy,
    google_secret_manager_secret_version.policy,
  ]
}

# Who may call each function: its one caller, never allUsers (the
# handlers rely on it). People's services are invoked by IAP's agent.
locals {
  invoker = {
    for k, f in local.functions : k => (
      f.caller == "iap" ? "serviceAccount:${local.agent.iap}" :
      f.caller == "trigger" ? "serviceAccount:${local.sa_email["trg-${k}"]}" :
      f.caller == "tasks" ? "serviceAccount:${local.sa_email["tasks"]}" :
      "serviceAccount:${local.sa_email["scheduler"]}"
    )
  }
}

resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each   = local.functions
  name       = google_cloud_run_v2_service.fn[each.key].name
  location   = var.region
  role       = "roles/run.invoker"
  member     = local.invoker[each.key]
  depends_on = [google_service_account.sa, terraform_data.service_agent]
}

# Who may use the pages and the API: IAP checks this before the request
# reaches the function, which then checks IAP's signed assertion.
resource "google_iap_web_cloud_run_service_iam_member" "users" {
  for_each               = { for p in setproduct(keys(local.people), var.page_users) : "${p[0]}/${p[1]}" => { service = p[0], member = p[1] } }
  cloud_run_service_name = google_cloud_run_v2_service.fn[each.value.service].name
  location               = var.region
  role                   = "roles/iap.httpsResourceAccessor"
  member                 = each.value.member
}
