# The ledger: Firestore in Native mode, with the composite indexes and TTL
# policies internal/ledger/firestore documents.

resource "google_firestore_database" "ledger" {
  count                   = var.firestore.create ? 1 : 0
  name                    = "(default)"
  location_id             = local.firestore_location
  type                    = "FIRESTORE_NATIVE"
  delete_protection_state = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy         = var.deletion_protection ? "ABANDON" : "DELETE"
  depends_on              = [google_project_service.api]
}

locals {
  # grants: one index per filtered field with the shared createTime order;
  # equality filters combine by index merging.
  ledger_indexes = {
    requester      = [["requester", "ASCENDING"], ["createTime", "DESCENDING"]]
    entitlement    = [["entitlement", "ASCENDING"], ["createTime", "DESCENDING"]]
    state          = [["state", "ASCENDING"], ["createTime", "DESCENDING"]]
    approvers      = [["approvers", "CONTAINS"], ["createTime", "DESCENDING"]]
    hasUnpublished = [["hasUnpublished", "ASCENDING"], ["createTime", "DESCENDING"]]
    state-endTime  = [["state", "ASCENDING"], ["endTime", "ASCENDING"]]
  }
}

resource "google_firestore_index" "grants" {
  for_each   = local.ledger_indexes
  collection = "grants"
  dynamic "fields" {
    for_each = each.value
    content {
      field_path   = fields.value[0]
      order        = fields.value[1] == "CONTAINS" ? null : fields.value[1]
      array_config = fields.value[1] == "CONTAINS" ? "CONTAINS" : null
    }
  }
  depends_on = [google_firestore_database.ledger]
}

# Idempotency keys expire at expireAt; finished mail claims 31 days after
# doneAt, once Pub/Sub can no longer redeliver their event (its longest
# retention), so a redelivery still finds the claim done. The IAM write
# queue's outcomes (a collection group under iamLeases) expire at expireAt,
# an hour after they were recorded: a backstop for callers that died, as
# the ledger deletes them itself when they are read.
resource "google_firestore_field" "ttl" {
  for_each = {
    onceKeys     = { field = "expireAt", offset = null }
    notifyClaims = { field = "doneAt", offset = "2678400s" }
    iamOutcomes  = { field = "expireAt", offset = null }
  }
  collection = each.key
  field      = each.value.field
  ttl_config {
    expiration_offset = each.value.offset
  }
  index_config {}
  depends_on = [google_firestore_database.ledger]
}
