# sigsci-kit on AWS for one corp: the feed bucket, the three functions, their schedules, secrets,
# least-privilege roles, alarms and the Athena table over the feed.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  name       = coalesce(var.name, trimsuffix(substr("sigsci-kit-${var.corp}", 0, 28), "-"))
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region
  bucket     = coalesce(var.bucket_name, "${local.name}-${local.account_id}-${local.region}")
  kms        = var.kms_key_arn != null

  # The store roots the functions are given; the exporter and the state store add their own keys below.
  feed_location  = "s3://${local.bucket}/${var.feed_prefix}"
  state_prefix   = "${var.health_prefix}/state"
  state_location = "s3://${local.bucket}/${local.state_prefix}"
  rules_key      = "${var.health_prefix}/rules.json"
  rules_location = "s3://${local.bucket}/${local.rules_key}"
  athena_prefix  = "athena-results"

  credentials_secret_arn = coalesce(var.credentials_secret_arn, try(aws_secretsmanager_secret.this["credentials"].arn, null))

  # The three functions by role: what differs between them. functions.tf makes one function and one
  # log group of each, iam.tf one role, schedules.tf one schedule of each with a schedule (null: none)
  # and alarms.tf one errors alarm of each.
  functions = {
    feed_export = {
      description = "sigsci-kit feed export of corp ${var.corp}: every site's feed, hour by hour, into ${local.feed_location}"
      zip         = var.feed_export_zip
      timeout     = var.feed_export_timeout
      memory      = var.feed_export_memory
      # One exporter per corp at a time: leases make overlap safe, but it would only waste API quota.
      reserved_concurrency = 1
      schedule             = var.feed_export_schedule
      # The environment of each function: exactly the variables its code reads (docs/interfaces.md,
      # "Environment"; tests/terraform/structure.py fails on a difference). null = not set, the code's default.
      environment = {
        SIGSCI_CORP                   = var.corp
        SIGSCI_API_URL                = var.api_url
        SIGSCI_KIT_CREDENTIALS_SECRET = local.credentials_secret_arn
        SIGSCI_KIT_FEED_LOCATION      = local.feed_location
        SIGSCI_KIT_SITES              = length(var.sites) > 0 ? join(",", var.sites) : null
        SIGSCI_KIT_FEED_GZIP_LEVEL    = var.feed_gzip_level == null ? null : tostring(var.feed_gzip_level)
        SIGSCI_KIT_FEED_FORMAT        = local.ocsf ? var.feed_format : null
        # Without security_lake the OCSF goes to the exporter's default: {feed location}/ocsf, Hive layout.
        SIGSCI_KIT_OCSF_LOCATION   = local.security_lake ? "s3://${local.lake_bucket}" : null
        SIGSCI_KIT_OCSF_LAYOUT     = local.security_lake ? "security-lake" : null
        SIGSCI_KIT_OCSF_SOURCE     = local.security_lake ? var.security_lake.source_name : null
        SIGSCI_KIT_OCSF_REGION     = local.security_lake ? local.region : null
        SIGSCI_KIT_OCSF_ACCOUNT_ID = local.security_lake ? local.account_id : null
        SIGSCI_KIT_OCSF_ROLE_ARN   = var.ocsf_role_arn
      }
    }
    agent_health = {
      description = "sigsci-kit agent health of corp ${var.corp}: evaluates every site's agents and notifies the channels"
      zip         = var.agent_health_zip
      timeout     = var.agent_health_timeout
      memory      = var.agent_health_memory
      # Evaluations of one corp never overlap (the state is compare-and-swap, but a second run is noise).
      reserved_concurrency = 1
      schedule             = var.agent_health_schedule
      environment = {
        SIGSCI_CORP                   = var.corp
        SIGSCI_API_URL                = var.api_url
        SIGSCI_KIT_CREDENTIALS_SECRET = local.credentials_secret_arn
        SIGSCI_KIT_STATE              = local.state_location
        SIGSCI_KIT_RULES_URL          = local.rules_location
      }
    }
    ack_url = {
      description          = "sigsci-kit acknowledgement pages of corp ${var.corp} (the links agent health sends)"
      zip                  = var.ack_url_zip
      timeout              = 10
      memory               = var.ack_url_memory
      reserved_concurrency = var.ack_url_reserved_concurrency
      # Invoked by its function URL only.
      schedule = null
      environment = {
        SIGSCI_CORP          = var.corp
        SIGSCI_KIT_STATE     = local.state_location
        SIGSCI_KIT_RULES_URL = local.rules_location
      }
    }
  }
  # {name}-feed-export, {name}-agent-health, {name}-ack-url: the functions, their roles and log groups.
  function_names = { for key, function in local.functions : key => "${local.name}-${replace(key, "_", "-")}" }

  common_tags = merge({ "sigsci-kit:corp" = var.corp }, var.tags)
}
