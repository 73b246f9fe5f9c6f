# The rules of least privilege (docs/deploy.md, "Who may do what"),
# asserted on an apply against a mock of the google provider: offline,
# with every computed value filled in. The service agents are not created
# (that runs gcloud) and nothing waits.

mock_provider "google" {}

variables {
  project        = "acme-jit"
  project_number = "123456789012"
  region         = "europe-west1"
  scope = {
    organization_id = "111111111111"
    folders         = ["222222222222"]
    projects        = ["acme-sandbox"]
  }
  page_users            = ["domain:example.com"]
  policy_file           = "tests/fixtures/policy.yaml"
  source_archive        = "tests/fixtures/source.zip"
  mail                  = { from = "jit@example.com", host = "smtp.example.com", username = "jit@example.com" }
  smtp_password         = "not-a-real-password"
  request_publishers    = ["serviceAccount:ticketing@acme-tools.iam.gserviceaccount.com"]
  create_service_agents = false
  propagation_wait      = 0
}

run "one_identity_per_function" {
  assert {
    condition     = alltrue([for k, a in google_service_account.sa : "${a.account_id}@${var.project}.iam.gserviceaccount.com" == local.sa[k]])
    error_message = "the emails the module uses are its service accounts'"
  }
  assert {
    condition     = length(distinct([for i in ["intake", "approval", "grant", "revoke"] : local.sa[i]])) == 4
    error_message = "each of the four functions needs its own service account"
  }
  assert {
    condition = alltrue([for k, f in local.functions :
    google_cloud_run_v2_service.fn[k].template[0].service_account == local.sa[f.identity]])
    error_message = "every entry point must run as its function's service account"
  }
  assert {
    condition     = length(google_cloud_run_v2_service.fn) == 9
    error_message = "every entry point jit.go registers is deployed"
  }
  assert {
    condition = alltrue([for k, f in local.functions :
    google_cloud_run_v2_service.fn[k].build_config[0].function_target == f.target])
    error_message = "each service is built with its entry point"
  }
}

run "only_grant_and_revoke_change_iam" {
  assert {
    condition = alltrue([for m in concat(
      [for r in google_organization_iam_member.iam_writer : r.member],
      [for r in google_folder_iam_member.iam_writer : r.member],
      [for r in google_project_iam_member.iam_writer : r.member],
    ) : contains(["serviceAccount:${local.sa["grant"]}", "serviceAccount:${local.sa["revoke"]}"], m)])
    error_message = "the IAM-writing role is held by the grant and revoke identities only"
  }
  assert {
    condition     = length(google_folder_iam_member.iam_writer) == 2 && length(google_project_iam_member.iam_writer) == 2 && length(google_organization_iam_member.iam_writer) == 0
    error_message = "the role is granted at each folder and project of the scope, to both writers, and not on the organization when it is not in the scope"
  }
  assert {
    condition = toset(google_organization_iam_custom_role.iam_writer[0].permissions) == toset([
      "resourcemanager.folders.getIamPolicy", "resourcemanager.folders.setIamPolicy",
      "resourcemanager.projects.getIamPolicy", "resourcemanager.projects.setIamPolicy",
    ])
    error_message = "the organization role holds only get/set IAM policy of the scope's resource kinds"
  }
  assert {
    condition     = toset(google_project_iam_custom_role.iam_writer["acme-sandbox"].permissions) == toset(["resourcemanager.projects.getIamPolicy", "resourcemanager.projects.setIamPolicy"])
    error_message = "a project scope's role holds only the project's get/set IAM policy"
  }
  assert {
    condition = alltrue([for r in google_project_iam_member.iam_writer :
    r.role == "projects/${r.project}/roles/${google_project_iam_custom_role.iam_writer[r.project].role_id}"])
    error_message = "each project is granted its own role"
  }
  # Nothing else the module grants on the pipeline's project can set IAM.
  assert {
    condition = alltrue([for r in concat(
      values(google_project_iam_member.ledger), values(google_project_iam_member.callbacks),
      values(google_project_iam_member.executions), [google_project_iam_member.workflow_trigger],
      [google_project_iam_member.builder_logs], [google_project_iam_member.eventarc_agent],
      ) : contains(["roles/datastore.user", "roles/logging.logWriter", "roles/eventarc.serviceAgent",
    local.role_id.callbacks, local.role_id.executions, local.role_id.starter], r.role)])
    error_message = "the pipeline's project roles are the ledger, logs, Eventarc's agent and the three one-permission workflow roles"
  }
}

run "organization_scope" {
  variables {
    scope = { organization_id = "111111111111", grant_organization = true }
  }
  assert {
    condition     = length(google_organization_iam_member.iam_writer) == 2 && contains(google_organization_iam_custom_role.iam_writer[0].permissions, "resourcemanager.organizations.setIamPolicy")
    error_message = "an organization scope grants the role on the organization, with its own permissions"
  }
  assert {
    condition     = length(google_project_iam_custom_role.iam_writer) == 0 && length(google_folder_iam_member.iam_writer) == 0
    error_message = "an organization scope needs no folder or project grants"
  }
}

run "projects_scope_needs_no_organization" {
  variables {
    scope = { projects = ["acme-sandbox", "acme-prod"] }
  }
  assert {
    condition     = length(google_organization_iam_custom_role.iam_writer) == 0 && length(google_project_iam_member.iam_writer) == 4
    error_message = "a project scope uses a role in each project"
  }
}

run "callers" {
  assert {
    condition = alltrue([for k, r in google_cloud_run_v2_service_iam_member.invoker :
    !contains(["allUsers", "allAuthenticatedUsers"], r.member) && r.role == "roles/run.invoker"])
    error_message = "no function is public"
  }
  assert {
    condition = [for k, r in google_cloud_run_v2_service_iam_member.invoker : k
    if r.member == "serviceAccount:${local.sa["tasks"]}"] == ["revoke-task"]
    error_message = "the tasks' OIDC identity may invoke the revoke task endpoint only"
  }
  assert {
    condition = [for k, r in google_cloud_run_v2_service_iam_member.invoker : k
    if r.member == "serviceAccount:${local.sa["scheduler"]}"] == ["sweep"]
    error_message = "the scheduler's identity may invoke the sweep only"
  }
  assert {
    condition = sort([for k, r in google_cloud_run_v2_service_iam_member.invoker : k
    if r.member == "serviceAccount:service-123456789012@gcp-sa-iap.iam.gserviceaccount.com"]) == tolist(["approval", "intake"])
    error_message = "IAP's service agent may invoke the people-facing services only"
  }
  assert {
    condition = alltrue([for k, f in local.triggered :
      google_cloud_run_v2_service_iam_member.invoker[k].member == "serviceAccount:${local.sa["trg-${k}"]}" &&
    google_eventarc_trigger.fn[k].service_account == local.sa["trg-${k}"]])
    error_message = "each event-driven function is invoked only by its own trigger's identity"
  }
  assert {
    condition     = length(distinct([for t in google_eventarc_trigger.fn : t.service_account])) == length(google_eventarc_trigger.fn)
    error_message = "every trigger has its own service account"
  }
  assert {
    condition     = google_eventarc_trigger.lifecycle.service_account == local.sa["trg-wf"] && google_project_iam_member.workflow_trigger.member == "serviceAccount:${local.sa["trg-wf"]}"
    error_message = "the workflow's trigger has its own identity, the only one that starts executions"
  }
  assert {
    condition     = alltrue([for t in concat(values(google_eventarc_trigger.fn), [google_eventarc_trigger.lifecycle]) : length(t.retry_policy) == 0])
    error_message = "retries stay on: no trigger sets retry_policy (whose only value, max_attempts = 1, turns them off)"
  }
  assert {
    condition = alltrue([for k, f in local.functions :
    google_cloud_run_v2_service.fn[k].ingress == (f.caller == "iap" ? "INGRESS_TRAFFIC_ALL" : "INGRESS_TRAFFIC_INTERNAL_ONLY")])
    error_message = "only the people-facing services take traffic from the internet"
  }
}

run "iap_on_the_services" {
  assert {
    condition     = sort([for k, s in google_cloud_run_v2_service.fn : k if s.iap_enabled]) == tolist(["approval", "intake"])
    error_message = "IAP is on the people-facing services, directly (no load balancer)"
  }
  assert {
    condition = alltrue([for k, f in local.people :
      contains([for e in google_cloud_run_v2_service.fn[k].template[0].containers[0].env : e.value if e.name == "JIT_IAP_AUDIENCES"], "/projects/123456789012/locations/europe-west1/services/jit-${k}")
    ])
    error_message = "the IAP audience is the service's own, known at the first apply"
  }
  assert {
    condition     = toset([for r in google_iap_web_cloud_run_service_iam_member.users : "${r.cloud_run_service_name}:${r.member}"]) == toset([for k in ["intake", "approval"] : "${google_cloud_run_v2_service.fn[k].name}:domain:example.com"])
    error_message = "page_users get IAP access to the two people-facing services"
  }
}

run "publishers" {
  assert {
    condition = {
      for t in keys(local.topics) : t => toset([for g in google_pubsub_topic_iam_member.publisher : g.member if g.topic == local.topic_id[t]])
      } == {
      events      = toset([for i in ["intake", "approval", "grant", "revoke"] : "serviceAccount:${local.sa[i]}"])
      lifecycle   = toset([for i in ["intake", "approval", "grant", "revoke"] : "serviceAccount:${local.sa[i]}"])
      approvals   = toset(["serviceAccount:${local.sa["workflow"]}"])
      activations = toset(["serviceAccount:${local.sa["workflow"]}"])
      revocations = toset(["serviceAccount:${local.sa["workflow"]}", "serviceAccount:${local.sa["intake"]}"])
      requests    = toset(["serviceAccount:ticketing@acme-tools.iam.gserviceaccount.com"])
    }
    error_message = "who may publish on each topic is exactly who must"
  }
  assert {
    condition     = alltrue([for g in google_pubsub_topic_iam_member.publisher : g.role == "roles/pubsub.publisher"])
    error_message = "publishers get the publisher role only"
  }
}

run "workflow" {
  assert {
    condition     = google_workflows_workflow.lifecycle.source_contents == file("../workflows/grant-lifecycle.yaml")
    error_message = "the deployed workflow is workflows/grant-lifecycle.yaml"
  }
  assert {
    condition     = google_project_iam_custom_role.workflow["callbacks"].permissions == toset(["workflows.callbacks.send"])
    error_message = "the callback role holds workflows.callbacks.send only"
  }
  assert {
    condition     = alltrue([for r in google_project_iam_custom_role.workflow : length(r.permissions) == 1 && !anytrue([for p in r.permissions : endswith(p, "setIamPolicy")])])
    error_message = "each workflow role holds one workflows permission"
  }
  assert {
    condition     = toset([for r in google_project_iam_member.callbacks : r.member]) == toset([for i in ["intake", "approval", "grant", "revoke"] : "serviceAccount:${local.sa[i]}"])
    error_message = "the functions, and nobody else, resume the workflow"
  }
  assert {
    condition     = google_eventarc_trigger.lifecycle.destination[0].workflow == local.workflow && google_eventarc_trigger.lifecycle.transport[0].pubsub[0].topic == local.topic_id["lifecycle"]
    error_message = "grant.requested on the lifecycle topic starts the workflow"
  }
}

run "secrets" {
  assert {
    condition     = toset([for r in google_secret_manager_secret_iam_member.link_keys : r.member]) == toset(["serviceAccount:${local.sa["approval"]}"]) && google_secret_manager_secret_iam_member.smtp_password[0].member == "serviceAccount:${local.sa["approval"]}"
    error_message = "only the approval function reads the link keys and the SMTP password"
  }
  assert {
    condition     = google_secret_manager_secret_version.policy.secret_data == file("tests/fixtures/policy.yaml")
    error_message = "the policy secret holds the policy file"
  }
  assert {
    condition     = google_secret_manager_secret_version.smtp_password[0].secret_data_wo == null && google_secret_manager_secret_version.link_key.secret_data_wo == null
    error_message = "write-only secrets are not kept in the state"
  }
}

run "refuses_public_page_users" {
  command = plan
  variables {
    page_users = ["allUsers"]
  }
  expect_failures = [var.page_users]
}

run "refuses_an_empty_scope" {
  command = plan
  variables {
    scope = {}
  }
  expect_failures = [var.scope]
}

run "refuses_folders_without_organization" {
  command = plan
  variables {
    scope = { folders = ["222222222222"] }
  }
  expect_failures = [var.scope]
}

run "refuses_plaintext_smtp" {
  command = plan
  variables {
    mail = { from = "jit@example.com", host = "smtp.example.com", security = "none" }
  }
  expect_failures = [var.mail]
}

run "needs_the_smtp_password_with_a_username" {
  command = plan
  variables {
    smtp_password = null
  }
  expect_failures = [google_secret_manager_secret_version.smtp_password]
}

run "looks_up_the_project_number" {
  variables {
    project_number = ""
  }
  override_data {
    target = data.google_project.this[0]
    values = { number = "987654321098" }
  }
  assert {
    condition     = local.url["approval"] == "https://jit-approval-987654321098.europe-west1.run.app" && local.agent.iap == "service-987654321098@gcp-sa-iap.iam.gserviceaccount.com"
    error_message = "without project_number the URLs and agents come from the project's number"
  }
}

# Classic mode (classic.tf): off by default; on, the three deciding
# identities read the scope and their six entry points get the settings.
run "classic_off_by_default" {
  assert {
    condition     = alltrue([for k, s in google_cloud_run_v2_service.fn : !anytrue([for e in s.template[0].containers[0].env : e.name == "RESOURCE_SCOPE"])])
    error_message = "without classic no function gets RESOURCE_SCOPE"
  }
  assert {
    condition = (length(google_organization_iam_custom_role.scope_reader) + length(google_project_iam_custom_role.scope_reader) +
      length(google_organization_iam_member.scope_reader) + length(google_folder_iam_member.scope_reader) +
    length(google_project_iam_member.scope_reader)) == 0
    error_message = "without classic there is no scope reader role and no binding of it"
  }
}

run "classic_organization_scope" {
  variables {
    scope = { organization_id = "111111111111", grant_organization = true }
    classic = {
      activation_timeout    = 240
      justification_pattern = "[A-Z]+-[0-9]+"
      max_reviewers         = 3
      cache_max_age         = 60
    }
  }
  assert {
    condition     = toset([for r in google_organization_iam_member.scope_reader : "${r.org_id} ${r.member}"]) == toset([for i in ["intake", "approval", "grant"] : "111111111111 serviceAccount:${local.sa[i]}"])
    error_message = "the intake, approval and grant identities, and nobody else, hold the reader role on the organization (the default classic scope)"
  }
  assert {
    condition     = alltrue([for r in google_organization_iam_member.scope_reader : r.role == "organizations/111111111111/roles/jitScopeReader"])
    error_message = "the organization is granted the reader role"
  }
  assert {
    condition = toset(google_organization_iam_custom_role.scope_reader[0].permissions) == toset([
      "resourcemanager.organizations.getIamPolicy", "resourcemanager.folders.list", "resourcemanager.folders.getIamPolicy",
      "resourcemanager.projects.list", "resourcemanager.projects.getIamPolicy",
    ])
    error_message = "the reader role lists folders and projects and gets IAM policies, nothing more"
  }
  assert {
    condition     = length(google_folder_iam_member.scope_reader) + length(google_project_iam_member.scope_reader) + length(google_project_iam_custom_role.scope_reader) == 0
    error_message = "an organization scope needs no folder or project reader grants"
  }
  assert {
    condition = alltrue([for k, f in local.functions :
      jsonencode({ for e in google_cloud_run_v2_service.fn[k].template[0].containers[0].env : e.name => e.value if contains([
        "RESOURCE_SCOPE", "RESOURCE_CATALOG", "ACTIVATION_TIMEOUT", "JUSTIFICATION_PATTERN", "JUSTIFICATION_HINT",
        "ACTIVATION_REQUEST_MAX_ROLES", "ACTIVATION_REQUEST_TIMEOUT", "ACTIVATION_REQUEST_MIN_REVIEWERS",
        "ACTIVATION_REQUEST_MAX_REVIEWERS", "JIT_CATALOG_MAX_AGE"], e.name) }) == jsonencode(
        contains(["intake", "intakeRequests", "approval", "approvalEvents", "approvalNotify", "grant"], f.target) ? {
          RESOURCE_SCOPE                   = "organizations/111111111111"
          ACTIVATION_TIMEOUT               = "240"
          JUSTIFICATION_PATTERN            = "[A-Z]+-[0-9]+"
          ACTIVATION_REQUEST_MAX_REVIEWERS = "3"
          JIT_CATALOG_MAX_AGE              = "60"
        } : {}
    )])
    error_message = "the six deciding entry points get RESOURCE_SCOPE and the options set, nothing for the unset ones; revoke, revokeTask and sweep get none"
  }
}

run "classic_project_scope" {
  variables {
    classic = {
      scope              = ["projects/acme-sandbox", "projects/acme-prod"]
      justification_hint = "Ticket number"
      max_roles          = 2
      request_timeout    = 30
      min_reviewers      = 2
    }
  }
  assert {
    condition = toset([for r in google_project_iam_member.scope_reader : "${r.project} ${r.role} ${r.member}"]) == toset([
      for p in setproduct(["acme-sandbox", "acme-prod"], ["intake", "approval", "grant"]) : "${p[0]} projects/${p[0]}/roles/jitScopeReader serviceAccount:${local.sa[p[1]]}"
    ])
    error_message = "each project of the classic scope grants its own reader role to the intake, approval and grant identities only"
  }
  assert {
    condition     = alltrue([for r in google_project_iam_custom_role.scope_reader : r.permissions == toset(["resourcemanager.projects.getIamPolicy"])])
    error_message = "a project's reader role only gets its IAM policy (a project needs no listing)"
  }
  assert {
    condition     = length(google_organization_iam_custom_role.scope_reader) + length(google_organization_iam_member.scope_reader) + length(google_folder_iam_member.scope_reader) == 0
    error_message = "a project classic scope needs no organization role, even when var.scope has folders"
  }
  assert {
    condition = alltrue([for k, f in local.functions :
      jsonencode({ for e in google_cloud_run_v2_service.fn[k].template[0].containers[0].env : e.name => e.value if startswith(e.name, "ACTIVATION_") || startswith(e.name, "JUSTIFICATION_") || startswith(e.name, "RESOURCE_") || e.name == "JIT_CATALOG_MAX_AGE" }) == jsonencode(
        contains(["intake", "approval", "grant"], f.identity) ? {
          RESOURCE_SCOPE                   = "projects/acme-sandbox,projects/acme-prod"
          JUSTIFICATION_HINT               = "Ticket number"
          ACTIVATION_REQUEST_MAX_ROLES     = "2"
          ACTIVATION_REQUEST_TIMEOUT       = "30"
          ACTIVATION_REQUEST_MIN_REVIEWERS = "2"
        } : {}
    )])
    error_message = "the deciding functions get the project scope and the options set; the revoke identity's get none"
  }
}

run "classic_default_scope_is_the_deployments" {
  variables {
    classic = {}
  }
  assert {
    condition     = [for e in google_cloud_run_v2_service.fn["grant"].template[0].containers[0].env : e.value if e.name == "RESOURCE_SCOPE"] == ["folders/222222222222,projects/acme-sandbox"]
    error_message = "classic.scope defaults to var.scope's folders and projects"
  }
  assert {
    condition = (toset([for r in google_folder_iam_member.scope_reader : "${r.folder} ${r.member}"]) == toset([for i in ["intake", "approval", "grant"] : "folders/222222222222 serviceAccount:${local.sa[i]}"]) &&
    length(google_project_iam_member.scope_reader) == 3 && length(google_organization_iam_member.scope_reader) == 0)
    error_message = "the reader role is granted at the folder and the project, to the three deciding identities"
  }
  assert {
    condition     = !contains(google_organization_iam_custom_role.scope_reader[0].permissions, "resourcemanager.organizations.getIamPolicy")
    error_message = "without the organization in the classic scope, the reader role cannot read its policy"
  }
}

run "refuses_a_malformed_classic_scope" {
  command = plan
  variables {
    classic = { scope = ["folders/acme"] }
  }
  expect_failures = [var.classic]
}

run "refuses_an_empty_classic_scope" {
  command = plan
  variables {
    classic = { scope = [] }
  }
  expect_failures = [var.classic]
}

run "refuses_another_organization" {
  command = plan
  variables {
    scope   = { organization_id = "111111111111", grant_organization = true }
    classic = { scope = ["organizations/999999999999"] }
  }
  expect_failures = [var.classic]
}

run "refuses_the_organization_outside_the_scope" {
  command = plan
  variables {
    classic = { scope = ["organizations/111111111111"] }
  }
  expect_failures = [var.classic]
}

run "refuses_a_project_outside_a_projects_scope" {
  command = plan
  variables {
    scope   = { projects = ["acme-sandbox"] }
    classic = { scope = ["projects/acme-prod"] }
  }
  expect_failures = [var.classic]
}

run "refuses_non_positive_classic_numbers" {
  command = plan
  variables {
    classic = { activation_timeout = 0, cache_max_age = 1.5 }
  }
  expect_failures = [var.classic]
}

run "refuses_more_min_than_max_reviewers" {
  command = plan
  variables {
    classic = { min_reviewers = 3, max_reviewers = 2 }
  }
  expect_failures = [var.classic]
}

run "refuses_a_bad_justification_pattern" {
  command = plan
  variables {
    classic = { justification_pattern = "(unclosed" }
  }
  expect_failures = [var.classic]
}
