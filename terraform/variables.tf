# ---- identity ----------------------------------------------------------------------------------

variable "corp" {
  description = "Signal Sciences corp short name. One module instance per corp (for_each in the caller)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9_.-]+$", var.corp))
    error_message = "corp must be a corp short name: lower-case letters, digits, '_', '.' and '-'."
  }
}

variable "name" {
  description = "Prefix of every resource name. Default: \"sigsci-kit-\" + corp (cut to 28 characters)."
  type        = string
  default     = null

  validation {
    condition     = var.name == null || can(regex("^[a-z0-9][a-z0-9-]{1,26}[a-z0-9]$", var.name))
    error_message = "name must be 3-28 lower-case letters, digits and '-', starting and ending with a letter or digit."
  }
}

variable "tags" {
  description = "Tags for every resource that takes them."
  type        = map(string)
  default     = {}
}

# ---- the functions -----------------------------------------------------------------------------

variable "feed_export_zip" {
  description = "Path of the feed-export package (scripts/package.sh writes target/lambda/feed-export/bootstrap.zip)."
  type        = string

  validation {
    condition     = endswith(var.feed_export_zip, ".zip")
    error_message = "feed_export_zip must be the path of a .zip (target/lambda/feed-export/bootstrap.zip)."
  }
}

variable "agent_health_zip" {
  description = "Path of the agent-health package (scripts/package.sh writes target/lambda/agent-health/bootstrap.zip)."
  type        = string

  validation {
    condition     = endswith(var.agent_health_zip, ".zip")
    error_message = "agent_health_zip must be the path of a .zip (target/lambda/agent-health/bootstrap.zip)."
  }
}

variable "ack_url_zip" {
  description = "Path of the ack-url package (scripts/package.sh writes target/lambda/ack-url/bootstrap.zip)."
  type        = string

  validation {
    condition     = endswith(var.ack_url_zip, ".zip")
    error_message = "ack_url_zip must be the path of a .zip (target/lambda/ack-url/bootstrap.zip)."
  }
}

variable "architecture" {
  description = "Lambda architecture of the three packages: arm64 (scripts/package.sh's default) or x86_64 (package.sh --arch x86_64)."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64, the architecture the zips were built for."
  }
}

variable "api_url" {
  description = "Signal Sciences API base URL (SIGSCI_API_URL). Default: the code's, the public API."
  type        = string
  default     = null

  validation {
    condition     = var.api_url == null || can(regex("^https?://[^/]+", var.api_url))
    error_message = "api_url must be an http(s) base URL such as https://dashboard.signalsciences.net."
  }
}

variable "sites" {
  description = "Site short names to export (SIGSCI_KIT_SITES) and to project in Athena. Empty: every site of the corp, and Athena queries name their sites (site = '…' or site IN (…))."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for site in var.sites : can(regex("^[a-z0-9_.-]+$", site))])
    error_message = "sites must be site short names: lower-case letters, digits, '_', '.' and '-'."
  }
}

variable "feed_gzip_level" {
  description = "gzip level 0-9 of the feed parts (SIGSCI_KIT_FEED_GZIP_LEVEL). Default: the code's (5)."
  type        = number
  default     = null

  validation {
    condition     = var.feed_gzip_level == null || try(var.feed_gzip_level >= 0 && var.feed_gzip_level <= 9 && floor(var.feed_gzip_level) == var.feed_gzip_level, false)
    error_message = "feed_gzip_level must be a whole number from 0 to 9."
  }
}

variable "feed_format" {
  description = "What the feed export writes (SIGSCI_KIT_FEED_FORMAT): ndjson, ocsf-parquet (OCSF HTTP Activity in Parquet, docs/ocsf-mapping.md) or both."
  type        = string
  default     = "ndjson"

  validation {
    condition     = contains(["ndjson", "ocsf-parquet", "both"], var.feed_format)
    error_message = "feed_format must be ndjson, ocsf-parquet or both."
  }
}

variable "ocsf_glue_table" {
  description = "Create the Glue table requests_ocsf over the OCSF Parquet in the feed bucket ({feed_prefix}/ocsf/, Hive layout). Needs feed_format ocsf-parquet or both, and no security_lake."
  type        = bool
  default     = false
}

variable "security_lake" {
  description = "Register the OCSF output as an Amazon Security Lake custom source and write it there: source_name (the custom source), crawler_role_arn (the IAM role the lake's Glue crawler assumes), external_id (of the provider identity, this account). Needs feed_format ocsf-parquet or both. null: no lake."
  type = object({
    source_name      = string
    crawler_role_arn = string
    external_id      = string
  })
  default = null

  validation {
    condition     = var.security_lake == null || try(can(regex("^[A-Za-z0-9_-]{1,64}$", var.security_lake.source_name)) && can(regex("^arn:[^:]+:iam::[0-9]{12}:role/", var.security_lake.crawler_role_arn)), false)
    error_message = "security_lake.source_name must be 1-64 of A-Z a-z 0-9 - _, and crawler_role_arn an IAM role ARN."
  }
}

variable "ocsf_role_arn" {
  description = "An IAM role the feed exporter assumes (sts:AssumeRole) to write the OCSF output (SIGSCI_KIT_OCSF_ROLE_ARN), e.g. the one a Security Lake in another account grants its custom source. The module lets the feed-export role assume exactly this ARN. Needs feed_format ocsf-parquet or both. null: the function's own role writes."
  type        = string
  default     = null

  validation {
    condition     = var.ocsf_role_arn == null || can(regex("^arn:[^:]+:iam::[0-9]{12}:role/.+$", var.ocsf_role_arn))
    error_message = "ocsf_role_arn must be an IAM role ARN (arn:PARTITION:iam::ACCOUNT:role/NAME)."
  }
}

variable "rules" {
  description = "The agent-health rules document (YAML or JSON, see crates/agent-health/README.md). The module sets ack.base_url (the ack function URL) and ack.secret (the generated signing key) unless given, and points every channel without a secret at the channel-settings secret."
  type        = string
  default     = ""

  validation {
    condition     = trimspace(var.rules) == "" || can(keys(yamldecode(var.rules)))
    error_message = "rules must be a YAML or JSON mapping (the agent-health rules document), or empty for the defaults."
  }
}

variable "feed_export_timeout" {
  description = "Feed export timeout in seconds. Below the schedule's period, so runs do not overlap; the exporter stops cleanly before it."
  type        = number
  default     = 840

  validation {
    condition     = var.feed_export_timeout >= 60 && var.feed_export_timeout <= 900
    error_message = "feed_export_timeout must be 60-900 seconds."
  }
}

variable "feed_export_memory" {
  description = "Feed export memory in MB (CPU scales with it; parts are gzipped in memory)."
  type        = number
  default     = 1024

  validation {
    condition     = var.feed_export_memory >= 256 && var.feed_export_memory <= 10240
    error_message = "feed_export_memory must be 256-10240 MB."
  }
}

variable "agent_health_timeout" {
  description = "Agent health timeout in seconds."
  type        = number
  default     = 120

  validation {
    condition     = var.agent_health_timeout >= 10 && var.agent_health_timeout <= 900
    error_message = "agent_health_timeout must be 10-900 seconds."
  }
}

variable "agent_health_memory" {
  description = "Agent health memory in MB."
  type        = number
  default     = 256

  validation {
    condition     = var.agent_health_memory >= 128 && var.agent_health_memory <= 10240
    error_message = "agent_health_memory must be 128-10240 MB."
  }
}

variable "ack_url_memory" {
  description = "Ack URL function memory in MB."
  type        = number
  default     = 256

  validation {
    condition     = var.ack_url_memory >= 128 && var.ack_url_memory <= 10240
    error_message = "ack_url_memory must be 128-10240 MB."
  }
}

variable "ack_url_reserved_concurrency" {
  description = "Reserved concurrency of the public ack endpoint: a cap on what a flood of (unsigned, refused) requests can cost."
  type        = number
  default     = 5

  validation {
    condition     = var.ack_url_reserved_concurrency >= 1 && var.ack_url_reserved_concurrency <= 100
    error_message = "ack_url_reserved_concurrency must be 1-100."
  }
}

variable "log_retention_days" {
  description = "Retention of the functions' log groups, in days."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "log_level" {
  description = "Application log level (Lambda's JSON log format passes it as AWS_LAMBDA_LOG_LEVEL, which the functions read)."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], var.log_level)
    error_message = "log_level must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL."
  }
}

# ---- schedules ---------------------------------------------------------------------------------

variable "feed_export_schedule" {
  description = "EventBridge Scheduler expression of the feed export."
  type        = string
  default     = "rate(15 minutes)"

  validation {
    condition     = can(regex("^(rate\\((1 (minute|hour|day)|[1-9][0-9]* (minutes|hours|days))\\)|cron\\(([^ ]+ ){5}[^ ]+\\))$", var.feed_export_schedule))
    error_message = "feed_export_schedule must be rate(N minutes|hours|days) or a six-field cron(...) expression."
  }
}

variable "agent_health_schedule" {
  description = "EventBridge Scheduler expression of the agent health evaluation (the rules' evaluation.interval should match)."
  type        = string
  default     = "rate(5 minutes)"

  validation {
    condition     = can(regex("^(rate\\((1 (minute|hour|day)|[1-9][0-9]* (minutes|hours|days))\\)|cron\\(([^ ]+ ){5}[^ ]+\\))$", var.agent_health_schedule))
    error_message = "agent_health_schedule must be rate(N minutes|hours|days) or a six-field cron(...) expression."
  }
}

variable "schedules_enabled" {
  description = "false pauses both schedules (the functions stay deployed)."
  type        = bool
  default     = true
}

variable "schedule_retry_attempts" {
  description = "How often the scheduler retries an invocation it could not deliver before it goes to the dead-letter queue."
  type        = number
  default     = 3

  validation {
    condition     = var.schedule_retry_attempts >= 0 && var.schedule_retry_attempts <= 185
    error_message = "schedule_retry_attempts must be 0-185."
  }
}

variable "schedule_max_event_age" {
  description = "Seconds after which a scheduled event not yet run is given up: by the scheduler (to the dead-letter queue) and by Lambda's queue (behind the reserved concurrency). The next run is due by then anyway."
  type        = number
  default     = 300

  validation {
    condition     = var.schedule_max_event_age >= 60 && var.schedule_max_event_age <= 21600
    error_message = "schedule_max_event_age must be 60-21600 seconds (Lambda's limit for queued events)."
  }
}

# ---- storage -----------------------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the feed bucket. Default: name + account id + region."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 lower-case letters, digits, '.' and '-')."
  }
}

variable "feed_prefix" {
  description = "Key prefix of the feed in the bucket (the exporter writes {prefix}/corp=C/site=S/dt=YYYY-MM-DD/hour=HH/)."
  type        = string
  default     = "feed"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_-]+(/[a-zA-Z0-9_-]+)*$", var.feed_prefix))
    error_message = "feed_prefix must be one or more path segments without leading or trailing '/'."
  }
}

variable "health_prefix" {
  description = "Key prefix of agent health's state ({prefix}/state/) and rules ({prefix}/rules.json) in the bucket."
  type        = string
  default     = "agent-health"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_-]+(/[a-zA-Z0-9_-]+)*$", var.health_prefix))
    error_message = "health_prefix must be one or more path segments without leading or trailing '/'."
  }
}

variable "force_destroy" {
  description = "Let terraform destroy delete a bucket that still holds objects (the exported feed!). Tests only."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for the bucket, secrets, logs, queue, topic and environment. Default: AWS owned/managed keys. Its key policy must let CloudWatch Logs, CloudWatch (alarms to SNS) and EventBridge Scheduler use it."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."
  }
}

variable "feed_transition_days" {
  description = "Days after which feed objects move to feed_transition_storage_class; null: never."
  type        = number
  default     = 30

  validation {
    condition     = var.feed_transition_days == null || try(var.feed_transition_days >= 1, false)
    error_message = "feed_transition_days must be at least 1, or null."
  }

  validation {
    condition     = var.feed_transition_days == null || !contains(["STANDARD_IA", "ONEZONE_IA"], var.feed_transition_storage_class) || try(var.feed_transition_days >= 30, false)
    error_message = "S3 moves objects to STANDARD_IA or ONEZONE_IA after 30 days at the earliest."
  }
}

variable "feed_transition_storage_class" {
  description = "Storage class feed objects move to after feed_transition_days."
  type        = string
  default     = "STANDARD_IA"

  validation {
    condition     = contains(["STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"], var.feed_transition_storage_class)
    error_message = "feed_transition_storage_class must be STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER or DEEP_ARCHIVE."
  }
}

variable "feed_expiration_days" {
  description = "Days after which feed objects are deleted; null: kept forever."
  type        = number
  default     = 365

  validation {
    condition     = var.feed_expiration_days == null || try(var.feed_expiration_days >= 1, false)
    error_message = "feed_expiration_days must be at least 1, or null."
  }

  validation {
    condition     = var.feed_expiration_days == null || var.feed_transition_days == null || try(var.feed_expiration_days > var.feed_transition_days, false)
    error_message = "feed_expiration_days must be later than feed_transition_days."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days old versions are kept (the ledger and the health state are rewritten every run)."
  type        = number
  default     = 7

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "noncurrent_version_expiration_days must be at least 1."
  }
}

variable "abort_incomplete_upload_days" {
  description = "Days after which multipart uploads left by a killed invocation are aborted."
  type        = number
  default     = 1

  validation {
    condition     = var.abort_incomplete_upload_days >= 1
    error_message = "abort_incomplete_upload_days must be at least 1."
  }
}

# ---- secrets -----------------------------------------------------------------------------------

variable "credentials_secret_arn" {
  description = "An existing Secrets Manager secret holding {\"email\", \"token\"} (or \"password\"). Default: the module creates an empty one to fill after apply."
  type        = string
  default     = null

  validation {
    condition     = var.credentials_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.credentials_secret_arn))
    error_message = "credentials_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "additional_secret_arns" {
  description = "Further secrets the rules reference (secretsmanager:ARN) that agent-health may read."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.additional_secret_arns : can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", arn))])
    error_message = "additional_secret_arns must be Secrets Manager secret ARNs."
  }
}

variable "ack_key_version" {
  description = "Version of the generated ack-link signing key: increase it to rotate the key (links sent before stay valid until they expire)."
  type        = number
  default     = 1

  validation {
    condition     = var.ack_key_version >= 1 && floor(var.ack_key_version) == var.ack_key_version
    error_message = "ack_key_version must be a whole number of at least 1."
  }
}

variable "secret_recovery_days" {
  description = "Recovery window of the module's secrets after destroy (0: delete at once)."
  type        = number
  default     = 7

  validation {
    condition     = var.secret_recovery_days == 0 || (var.secret_recovery_days >= 7 && var.secret_recovery_days <= 30)
    error_message = "secret_recovery_days must be 0 or 7-30."
  }
}

# ---- alarms ------------------------------------------------------------------------------------

variable "create_alarms" {
  description = "Create the CloudWatch alarms (false where CloudWatch alarms cannot be created, as on moto)."
  type        = bool
  default     = true
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic (confirm the subscription mail); null: none."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be an e-mail address."
  }
}

variable "feed_lag_alarm_hours" {
  description = "Alarm when a site's newest complete hour ends more than this many hours ago."
  type        = number
  default     = 3

  validation {
    condition     = var.feed_lag_alarm_hours >= 2 && var.feed_lag_alarm_hours <= 23
    error_message = "feed_lag_alarm_hours must be 2-23: an hour completes after it ends, and the API keeps 24 hours."
  }
}

variable "heartbeat_alarm_minutes" {
  description = "Alarm when agent health has recorded no evaluation for this many minutes."
  type        = number
  default     = 15

  validation {
    condition     = var.heartbeat_alarm_minutes >= 10 && var.heartbeat_alarm_minutes <= 1440
    error_message = "heartbeat_alarm_minutes must be 10-1440."
  }
}

# ---- Athena ------------------------------------------------------------------------------------

variable "glue_catalog_id" {
  description = "Glue Data Catalog (account id) of the database and table. Default: the caller's account."
  type        = string
  default     = null

  validation {
    condition     = var.glue_catalog_id == null || can(regex("^[0-9]{12}$", var.glue_catalog_id))
    error_message = "glue_catalog_id must be a 12-digit account id."
  }
}

variable "athena_projection_days" {
  description = "How many days back the table's dt partitions are projected. Default: feed_expiration_days, or 400 when the feed is kept forever."
  type        = number
  default     = null

  validation {
    condition     = var.athena_projection_days == null || try(var.athena_projection_days >= 1, false)
    error_message = "athena_projection_days must be at least 1, or null."
  }
}

variable "athena_bytes_scanned_cutoff" {
  description = "Per-query scan limit of the Athena workgroup, in bytes (at least 10 MB); null: none."
  type        = number
  default     = 107374182400

  validation {
    condition     = var.athena_bytes_scanned_cutoff == null || try(var.athena_bytes_scanned_cutoff >= 10485760, false)
    error_message = "athena_bytes_scanned_cutoff must be at least 10485760 (10 MB), or null."
  }
}
