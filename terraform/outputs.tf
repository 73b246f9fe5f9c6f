output "pages_url" {
  description = "The approval pages (the links in the mails point here), behind IAP."
  value       = local.url["approval"]
}

output "api_url" {
  description = "The intake API (`jit --api`), behind IAP."
  value       = local.url["intake"]
}

output "service_accounts" {
  description = "Every identity the module creates, by role."
  value       = local.sa
}

output "workflow" {
  description = "The lifecycle workflow."
  value       = google_workflows_workflow.lifecycle.id
}

output "topics" {
  description = "The topics; other systems subscribe to events and publish signed requests on requests."
  value       = { for k, t in google_pubsub_topic.topic : k => t.id }
}
