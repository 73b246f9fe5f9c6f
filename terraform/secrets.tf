# Secret Manager: the policy, the approval link keys and the SMTP password.
# Each is readable only by the functions that use it.

resource "google_secret_manager_secret" "policy" {
  secret_id = "${var.prefix}-policy"
  replication {
    auto {}
  }
  depends_on = [google_project_service.api]
}

# The policy in force is the latest version (JIT_POLICY); each apply with
# a changed file adds one, and the functions pick it up on their next
# refresh (docs/policy.md).
resource "google_secret_manager_secret_version" "policy" {
  secret      = local.policy_secret
  secret_data = file(var.policy_file)
}

resource "google_secret_manager_secret_iam_member" "policy" {
  for_each  = toset(local.identities)
  secret_id = local.policy_secret
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${local.sa[each.key]}"
}

# The approval link keys: every enabled version verifies, the newest signs
# (approvallink.SecretManagerKeys). The key is generated here, from two
# random (crypto/rand) UUIDs, 244 random bits, and written write-only: it
# never enters the state. Bump var.link_key_version to add a new one.
resource "google_secret_manager_secret" "link_keys" {
  secret_id = "${var.prefix}-link-keys"
  replication {
    auto {}
  }
  depends_on = [google_project_service.api]
}

resource "google_secret_manager_secret_version" "link_key" {
  secret                 = local.link_secret
  secret_data_wo         = "${uuid()}${uuid()}"
  secret_data_wo_version = var.link_key_version
  # Rotation adds a version; the previous one keeps verifying the links
  # already mailed until an operator disables it (docs/security.md).
  deletion_policy = "ABANDON"
}

# Accessor reads the versions; viewer lists them (which are enabled).
resource "google_secret_manager_secret_iam_member" "link_keys" {
  for_each  = toset(["roles/secretmanager.secretAccessor", "roles/secretmanager.viewer"])
  secret_id = local.link_secret
  role      = each.value
  member    = "serviceAccount:${local.sa["approval"]}"
}

resource "google_secret_manager_secret" "smtp_password" {
  count     = var.mail.username != "" ? 1 : 0
  secret_id = "${var.prefix}-smtp-password"
  replication {
    auto {}
  }
  depends_on = [google_project_service.api]
}

resource "google_secret_manager_secret_version" "smtp_password" {
  count                  = var.mail.username != "" ? 1 : 0
  secret                 = "projects/${var.project}/secrets/${google_secret_manager_secret.smtp_password[0].secret_id}"
  secret_data_wo         = var.smtp_password
  secret_data_wo_version = var.smtp_password_version

  lifecycle {
    precondition {
      condition     = var.smtp_password != null
      error_message = "smtp_password is required with mail.username (TF_VAR_smtp_password, never a file in Git)."
    }
  }
}

resource "google_secret_manager_secret_iam_member" "smtp_password" {
  count     = var.mail.username != "" ? 1 : 0
  secret_id = "projects/${var.project}/secrets/${google_secret_manager_secret.smtp_password[0].secret_id}"
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${local.sa["approval"]}"
}
