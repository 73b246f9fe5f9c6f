# The topics, and who may publish on each: only the identities that must.

resource "google_pubsub_topic" "topic" {
  for_each = local.topics
  name     = each.value
  # Seven days, so a trigger that was failing can be replayed after a fix.
  message_retention_duration = "604800s"
  depends_on                 = [google_project_service.api]
}

locals {
  publishers = {
    # Every function records its transitions; any of them may flush a
    # grant's unpublished grant.requested (lifecycle.core.flush), the sweep
    # re-drives one no workflow claimed.
    events    = [for i in local.identities : "serviceAccount:${local.sa_email[i]}"]
    lifecycle = [for i in local.identities : "serviceAccount:${local.sa_email[i]}"]
    # The workflow's commands.
    approvals   = ["serviceAccount:${local.sa_email["workflow"]}"]
    activations = ["serviceAccount:${local.sa_email["workflow"]}"]
    # The workflow at the end; intake on withdraw and administrators' revoke.
    revocations = ["serviceAccount:${local.sa_email["workflow"]}", "serviceAccount:${local.sa_email["intake"]}"]
    requests    = var.request_publishers
  }
  publisher_grants = merge([
    for t, members in local.publishers : { for m in members : "${t}/${m}" => { topic = t, member = m } }
  ]...)
}

resource "google_pubsub_topic_iam_member" "publisher" {
  for_each   = local.publisher_grants
  topic      = local.topic_id[each.value.topic]
  role       = "roles/pubsub.publisher"
  member     = each.value.member
  depends_on = [google_service_account.sa]
}
