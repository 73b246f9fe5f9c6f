# The lifecycle workflow, its trigger, the revocation queue and the sweep.

resource "google_workflows_workflow" "lifecycle" {
  name            = "${var.prefix}-grant-lifecycle"
  region          = var.region
  description     = "One execution per grant: approval, activation, the end (docs/architecture.md §2)."
  service_account = local.sa_id["workflow"]
  # The deployed source is the file the local runner executes.
  source_contents = file("${path.module}/../workflows/grant-lifecycle.yaml")
  user_env_vars = {
    JIT_APPROVAL_TOPIC   = local.topics.approvals
    JIT_ACTIVATION_TOPIC = local.topics.activations
    JIT_REVOKE_TOPIC     = local.topics.revocations
  }
  deletion_protection = var.deletion_protection
  depends_on          = [google_project_service.api]
}

# grant.requested on the lifecycle topic starts one execution.
resource "google_eventarc_trigger" "lifecycle" {
  name            = "${var.prefix}-grant-lifecycle"
  location        = var.region
  service_account = local.sa["trg-wf"]
  matching_criteria {
    attribute = "type"
    value     = "google.cloud.pubsub.topic.v1.messagePublished"
  }
  transport {
    pubsub {
      topic = local.topic_id["lifecycle"]
    }
  }
  destination {
    workflow = "projects/${var.project}/locations/${var.region}/workflows/${google_workflows_workflow.lifecycle.name}"
  }
  depends_on = [terraform_data.propagation, google_project_iam_member.workflow_trigger]
}

# Each event-driven function's trigger, with its own identity: the only
# one allowed to invoke that function. No retry_policy: Eventarc then
# redelivers a failed event with backoff for the topic's retention
# (docs/google-cloud.md §5); the handlers are idempotent.
resource "google_eventarc_trigger" "fn" {
  for_each        = local.triggered
  name            = local.service[each.key]
  location        = var.region
  service_account = local.sa["trg-${each.key}"]
  matching_criteria {
    attribute = "type"
    value     = "google.cloud.pubsub.topic.v1.messagePublished"
  }
  transport {
    pubsub {
      topic = local.topic_id[each.value.topic]
    }
  }
  destination {
    cloud_run_service {
      service = google_cloud_run_v2_service.fn[each.key].name
      region  = var.region
    }
  }
  depends_on = [terraform_data.propagation, google_cloud_run_v2_service_iam_member.invoker]
}

# The end-time revocation tasks. A task for a grant not yet due answers
# 503 and is retried; the chain re-schedules beyond 30 days.
resource "google_cloud_tasks_queue" "revocations" {
  name     = "${var.prefix}-revocations"
  location = var.region
  retry_config {
    max_attempts  = -1
    min_backoff   = "10s"
    max_backoff   = "300s"
    max_doublings = 3
  }
  stackdriver_logging_config {
    sampling_ratio = 1.0
  }
  depends_on = [google_project_service.api]
}

# Grant schedules, revoke schedules the next link of a chain and deletes
# the task of a grant that ended early.
resource "google_cloud_tasks_queue_iam_member" "enqueuer" {
  for_each = toset(["grant", "revoke"])
  name     = google_cloud_tasks_queue.revocations.name
  location = var.region
  role     = "roles/cloudtasks.enqueuer"
  member   = "serviceAccount:${local.sa[each.key]}"
}

resource "google_cloud_tasks_queue_iam_member" "deleter" {
  name     = google_cloud_tasks_queue.revocations.name
  location = var.region
  role     = "roles/cloudtasks.taskDeleter"
  member   = "serviceAccount:${local.sa["revoke"]}"
}

# The sweep (docs/operations.md): every five minutes, with the scheduler
# identity's OIDC token for the sweep function's URL.
resource "google_cloud_scheduler_job" "sweep" {
  name             = "${var.prefix}-sweep"
  region           = var.region
  description      = "Finish revocations left behind and purge expired JIT bindings."
  schedule         = "*/5 * * * *"
  time_zone        = "Etc/UTC"
  attempt_deadline = "300s"
  http_target {
    uri         = local.url["sweep"]
    http_method = "POST"
    oidc_token {
      service_account_email = local.sa["scheduler"]
      audience              = local.url["sweep"]
    }
  }
  depends_on = [google_cloud_run_v2_service_iam_member.invoker]
}
