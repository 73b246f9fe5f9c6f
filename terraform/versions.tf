terraform {
  # 1.11: write-only arguments (secret_data_wo) keep the generated link key
  # and the SMTP password out of the state.
  required_version = ">= 1.11"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 7.45.0, < 8.0.0"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}
