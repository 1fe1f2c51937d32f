variable "corps" {
  description = "One entry per corp: its sites (empty: all), API URL (null: the public API), agent-health rules (YAML/JSON) and alarm e-mail."
  type = map(object({
    sites       = optional(list(string), [])
    api_url     = optional(string)
    rules       = optional(string, "")
    alarm_email = optional(string)
  }))

  validation {
    condition     = length(var.corps) > 0
    error_message = "corps must name at least one corp."
  }
}

variable "aws_region" {
  description = "AWS region of every corp's resources."
  type        = string
  default     = "us-east-1"
}

variable "deployment" {
  description = "Value of the sigsci-kit:deployment tag on every resource."
  type        = string
  default     = "sigsci-kit"
}

variable "feed_export_zip" {
  description = "The feed-export package, as scripts/package.sh writes it."
  type        = string
  default     = "../../../target/lambda/feed-export/bootstrap.zip"
}

variable "agent_health_zip" {
  description = "The agent-health package, as scripts/package.sh writes it."
  type        = string
  default     = "../../../target/lambda/agent-health/bootstrap.zip"
}

variable "ack_url_zip" {
  description = "The ack-url package, as scripts/package.sh writes it."
  type        = string
  default     = "../../../target/lambda/ack-url/bootstrap.zip"
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for every corp's data (see the module's kms_key_arn); null: AWS keys."
  type        = string
  default     = null
}

variable "create_alarms" {
  description = "Create the CloudWatch alarms (false on emulators that cannot)."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "Let destroy delete buckets that still hold the feed (tests only)."
  type        = bool
  default     = false
}

variable "secret_recovery_days" {
  description = "Recovery window of the secrets after destroy (0: at once, for tests)."
  type        = number
  default     = 7
}

variable "aws_endpoint_url" {
  description = "An AWS emulator's URL (moto) for every service, with test credentials; null for AWS."
  type        = string
  default     = null
}
