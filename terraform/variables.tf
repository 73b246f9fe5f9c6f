# The documented variables (docs/deploy.md). Everything else is derived.

variable "project" {
  description = "ID of the project that holds the pipeline (a dedicated project: the callbacks role and Firestore access are project-wide)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "project must be a project ID: 6 to 30 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "project_number" {
  description = "The project's number. Optional: looked up when empty. Set it to plan without reading the project (offline checks)."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^[0-9]*$", var.project_number))
    error_message = "project_number must be the project's number (digits only), or empty to look it up."
  }
}

variable "region" {
  description = "Region of the functions, the workflow, the queue, the scheduler job and the Firestore database."
  type        = string
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1."
  }
}

variable "prefix" {
  description = "Prefix of every resource's name, so that a second environment can share a project (docs/deploy.md)."
  type        = string
  default     = "jit"
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{0,7}$", var.prefix))
    error_message = "prefix must be 1 to 8 lowercase letters and digits, starting with a letter (service account IDs are at most 30 characters)."
  }
}

variable "scope" {
  description = <<-EOT
    Where grants may change IAM: the organization, folders and projects whose allow policies the
    grant and revoke functions may read and set. organization_id is required for an organization
    or folder scope (the custom role lives in the organization); grant_organization gives the
    whole organization.
  EOT
  type = object({
    organization_id    = optional(string, "")
    grant_organization = optional(bool, false)
    folders            = optional(list(string), [])
    projects           = optional(list(string), [])
  })
  validation {
    condition     = var.scope.grant_organization || length(var.scope.folders) + length(var.scope.projects) > 0
    error_message = "scope must name the organization (grant_organization = true), folders or projects."
  }
  validation {
    condition     = (!var.scope.grant_organization && length(var.scope.folders) == 0) || can(regex("^[0-9]+$", var.scope.organization_id))
    error_message = "scope.organization_id (digits) is required with grant_organization or folders: the custom role is defined in the organization."
  }
  validation {
    condition     = alltrue([for f in var.scope.folders : can(regex("^[0-9]+$", f))])
    error_message = "scope.folders must be folder numbers (digits), not folders/N or names."
  }
  validation {
    condition     = alltrue([for p in var.scope.projects : can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", p))])
    error_message = "scope.projects must be project IDs."
  }
}

variable "page_users" {
  description = "Who may open the pages and call the API through IAP, as IAM members: domain:example.com, group:jit-users@example.com, user:…"
  type        = list(string)
  validation {
    condition     = length(var.page_users) > 0 && alltrue([for m in var.page_users : can(regex("^(user|group|domain|principalSet|principal):.+$", m))])
    error_message = "page_users must be IAM members (domain:…, group:…, user:…); allUsers and allAuthenticatedUsers are refused."
  }
}

variable "internal_domains" {
  description = "The organization's hosted domains: IAP's hd claim in one of these makes a caller internal for the policy."
  type        = list(string)
  default     = []
}

variable "policy_file" {
  description = "Path of the policy YAML (docs/policy.md); its content becomes a Secret Manager version. Lint it first with `jit policy lint`."
  type        = string
}

variable "mail" {
  description = "The notifications' sender and SMTP relay (docs/email-approval.md). security is starttls or tls; with a username the password goes in smtp_password."
  type = object({
    from     = string
    host     = string
    port     = optional(number)
    security = optional(string, "starttls")
    username = optional(string, "")
  })
  validation {
    condition     = contains(["starttls", "tls"], var.mail.security)
    error_message = "mail.security must be starttls or tls: the relay is reached over the internet."
  }
  validation {
    condition     = can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.mail.from))
    error_message = "mail.from must be an email address."
  }
  validation {
    condition     = can(regex("^[A-Za-z0-9.-]+$", var.mail.host))
    error_message = "mail.host must be a host name without a port (the port is mail.port)."
  }
}

variable "smtp_password" {
  description = "The SMTP password, written to Secret Manager as a write-only value (never in the state). Required with mail.username."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true
}

variable "smtp_password_version" {
  description = "Bump to write a new smtp_password (write-only values are written when this changes)."
  type        = number
  default     = 1
}

variable "link_key_version" {
  description = "Bump to add a new approval link key (docs/security.md: rotation); older enabled versions still verify."
  type        = number
  default     = 1
}

variable "request_publishers" {
  description = "IAM members (service accounts of other systems) that may publish signed requests on the requests topic. The policy still decides whom to trust."
  type        = list(string)
  default     = []
}

variable "firestore" {
  description = "The ledger's Firestore database: create it (false when the project already has a (default) database in Native mode), and where."
  type = object({
    create   = optional(bool, true)
    location = optional(string, "")
  })
  default = {}
}

variable "base_image" {
  description = "The Cloud Run functions Go base image; empty for the default of the region (google-24, Go 1.26)."
  type        = string
  default     = ""
}

variable "create_service_agents" {
  description = "Create the Eventarc, Pub/Sub and IAP service agents with gcloud before granting them roles (docs/deploy.md: first apply). Needs gcloud where terraform runs."
  type        = bool
  default     = true
}

variable "propagation_wait" {
  description = "Seconds to wait after granting the service agents' roles before creating triggers (IAM changes take up to minutes to apply)."
  type        = number
  default     = 90
}

variable "deletion_protection" {
  description = "Protect the services and the workflow from terraform destroy (docs/deploy.md: teardown)."
  type        = bool
  default     = true
}

variable "source_archive" {
  description = "The function source zip (`make source` writes build/function-source.zip, the default)."
  type        = string
  default     = ""
}

variable "classic" {
  description = <<-EOT
    JIT Access 1.x's eligible bindings (docs/deploy.md: classic mode); null turns classic mode off.
    scope lists projects/ID, folders/N and organizations/N whose IAM policies (and, below folders and
    organizations, every folder and project) hold eligible bindings; it defaults to var.scope. It must
    lie within var.scope, since grant and revoke can change IAM only there: an organization must be
    var.scope's, and a scope of projects only admits those projects, but a folder's or project's
    ancestry cannot be checked offline. The other attributes are JIT Access's options, each omitted
    (the functions' defaults) when null: activation_timeout and request_timeout in minutes, max_roles,
    min_reviewers and max_reviewers, justification_pattern (RE2) and justification_hint, and
    cache_max_age, the seconds a listing may reuse a cached IAM policy (default 300), and
    reads_per_second, the Resource Manager calls a second of each instance's catalog (default 5,
    at most 10: the project's quota, shared by all instances).
  EOT
  type = object({
    scope                 = optional(list(string))
    activation_timeout    = optional(number)
    justification_pattern = optional(string)
    justification_hint    = optional(string)
    max_roles             = optional(number)
    request_timeout       = optional(number)
    min_reviewers         = optional(number)
    max_reviewers         = optional(number)
    cache_max_age         = optional(number)
    reads_per_second      = optional(number)
  })
  default = null
  # Terraform 1.11 does not short-circuit && and ||, hence the conditionals.
  validation {
    condition = var.classic == null ? true : var.classic.scope == null ? true : length(var.classic.scope) > 0 && alltrue([
      for r in var.classic.scope : can(regex("^(projects/[a-z][a-z0-9-]{4,28}[a-z0-9]|folders/[0-9]+|organizations/[0-9]+)$", r))
    ])
    error_message = "classic.scope must list projects/ID, folders/N or organizations/N (omit it for var.scope)."
  }
  validation {
    condition = var.classic == null ? true : var.classic.scope == null ? true : alltrue([
      for r in var.classic.scope : !startswith(r, "organizations/") || (var.scope.grant_organization && r == "organizations/${var.scope.organization_id}")
    ])
    error_message = "classic.scope may name only var.scope's organization, with scope.grant_organization = true: grant and revoke change IAM only within var.scope."
  }
  validation {
    condition = var.classic == null ? true : var.classic.scope == null ? true : (var.scope.grant_organization || length(var.scope.folders) > 0) ? true : alltrue([
      for r in var.classic.scope : contains([for p in var.scope.projects : "projects/${p}"], r)
    ])
    error_message = "with a scope of projects only, classic.scope must be among them (projects/ID): grant and revoke change IAM only within var.scope."
  }
  validation {
    condition = var.classic == null ? true : alltrue([
      for n in [var.classic.activation_timeout, var.classic.request_timeout, var.classic.max_roles, var.classic.min_reviewers, var.classic.max_reviewers, var.classic.cache_max_age] :
      n == null ? true : n >= 1 && floor(n) == n
    ])
    error_message = "classic's activation_timeout, request_timeout (minutes), max_roles, min_reviewers, max_reviewers and cache_max_age (seconds) must be positive whole numbers."
  }
  validation {
    condition     = var.classic == null ? true : var.classic.reads_per_second == null ? true : var.classic.reads_per_second > 0 && var.classic.reads_per_second <= 10
    error_message = "classic.reads_per_second must be above 0 and at most 10, Resource Manager's read quota a second."
  }
  validation {
    condition     = var.classic == null ? true : var.classic.min_reviewers == null || var.classic.max_reviewers == null ? true : var.classic.min_reviewers <= var.classic.max_reviewers
    error_message = "classic.min_reviewers must not exceed classic.max_reviewers."
  }
  validation {
    condition     = var.classic == null ? true : var.classic.justification_pattern == null ? true : can(regexall(var.classic.justification_pattern, ""))
    error_message = "classic.justification_pattern must be a regular expression (RE2 syntax, as the functions read it)."
  }
}
