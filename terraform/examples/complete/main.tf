# sigsci-kit for several corps: one module instance per corp. Copy this directory, write a
# terraform.tfvars (README, "Deploy to AWS"), then `terraform init` and `terraform apply`.
#
# `aws_endpoint_url` points every AWS client at one endpoint with test credentials (moto, for
# tests/terraform/deep.sh); leave it null for AWS. The module itself has no such setting.

# Terraform and provider versions: the module's (../../versions.tf) hold for this configuration too;
# pin tighter here, in a terraform block, if your deployments need it.

locals {
  emulated = var.aws_endpoint_url != null
  # Every service the module uses, for the emulator's endpoints.
  services = ["athena", "cloudwatch", "glue", "iam", "kms", "lambda", "logs", "s3", "scheduler", "secretsmanager", "sns", "sqs", "sts"]
}

provider "aws" {
  region = var.aws_region

  # Emulator only: fixed credentials, no account lookups, path-style S3 on one endpoint.
  access_key                  = local.emulated ? "test" : null
  secret_key                  = local.emulated ? "test" : null
  skip_credentials_validation = local.emulated
  skip_requesting_account_id  = local.emulated
  skip_metadata_api_check     = local.emulated
  s3_use_path_style           = local.emulated

  dynamic "endpoints" {
    for_each = local.emulated ? [var.aws_endpoint_url] : []
    content {
      athena         = endpoints.value
      cloudwatch     = endpoints.value
      glue           = endpoints.value
      iam            = endpoints.value
      kms            = endpoints.value
      lambda         = endpoints.value
      logs           = endpoints.value
      s3             = endpoints.value
      scheduler      = endpoints.value
      secretsmanager = endpoints.value
      sns            = endpoints.value
      sqs            = endpoints.value
      sts            = endpoints.value
    }
  }

  default_tags {
    tags = { "sigsci-kit:deployment" = var.deployment }
  }
}

module "sigsci_kit" {
  source   = "../.."
  for_each = var.corps

  corp        = each.key
  sites       = each.value.sites
  api_url     = each.value.api_url
  rules       = each.value.rules
  alarm_email = each.value.alarm_email

  feed_export_zip  = var.feed_export_zip
  agent_health_zip = var.agent_health_zip
  ack_url_zip      = var.ack_url_zip

  create_alarms        = var.create_alarms
  force_destroy        = var.force_destroy
  secret_recovery_days = var.secret_recovery_days
  kms_key_arn          = var.kms_key_arn
}
