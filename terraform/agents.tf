# Service agents, created explicitly and given their roles before anything
# that needs them: on a fresh project Eventarc's first trigger fails while
# its agent does not exist yet or has no role (docs/deploy.md, "First
# apply"). The google provider creates service identities only in its beta
# release, so this runs gcloud, which the deployer has (docs/deploy.md);
# var.create_service_agents = false skips it where they exist already.

locals {
  agent = {
    eventarc = "service-${local.number}@gcp-sa-eventarc.iam.gserviceaccount.com"
    pubsub   = "service-${local.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    iap      = "service-${local.number}@gcp-sa-iap.iam.gserviceaccount.com"
  }
}

resource "terraform_data" "service_agent" {
  for_each         = var.create_service_agents ? toset(["eventarc.googleapis.com", "pubsub.googleapis.com", "iap.googleapis.com"]) : toset([])
  triggers_replace = [var.project, each.value]

  provisioner "local-exec" {
    command = "gcloud beta services identity create --service=${each.value} --project=${var.project} --quiet"
  }
  depends_on = [google_project_service.api]
}

# Eventarc's agent manages the triggers' subscriptions.
resource "google_project_iam_member" "eventarc_agent" {
  project    = var.project
  role       = "roles/eventarc.serviceAgent"
  member     = "serviceAccount:${local.agent.eventarc}"
  depends_on = [terraform_data.service_agent]
}

# Pub/Sub's agent mints each trigger's push token as the trigger's
# identity (needed for projects whose agent predates April 2021, harmless
# otherwise), on those identities only.
resource "google_service_account_iam_member" "pubsub_token" {
  for_each           = merge({ for k, f in local.triggered : k => "trg-${k}" }, { workflow = "trg-wf" })
  service_account_id = local.sa_id[each.value]
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${local.agent.pubsub}"
  depends_on         = [terraform_data.service_agent]
}

# IAM changes take minutes to reach every service; the triggers wait.
resource "terraform_data" "propagation" {
  triggers_replace = [google_project_iam_member.eventarc_agent.id]

  provisioner "local-exec" {
    command = "sleep ${var.propagation_wait}"
  }
  depends_on = [google_project_iam_member.eventarc_agent, google_service_account_iam_member.pubsub_token]
}
