output "bucket" {
  description = "Name of the feed bucket."
  value       = aws_s3_bucket.feed.id
}

output "bucket_arn" {
  description = "ARN of the feed bucket."
  value       = aws_s3_bucket.feed.arn
}

output "feed_location" {
  description = "Where the feed goes (SIGSCI_KIT_FEED_LOCATION): `sigsci-kit feed status --out` takes it."
  value       = local.feed_location
}

output "state_location" {
  description = "Agent health's state (SIGSCI_KIT_STATE): `sigsci-kit health status --state` takes it."
  value       = local.state_location
}

output "rules_location" {
  description = "The rules document the health functions read (SIGSCI_KIT_RULES_URL)."
  value       = local.rules_location
}

output "function_names" {
  description = "Function names by role: feed_export, agent_health, ack_url."
  value       = { for key, function in aws_lambda_function.function : key => function.function_name }
}

output "function_arns" {
  description = "Function ARNs by role: feed_export, agent_health, ack_url."
  value       = { for key, function in aws_lambda_function.function : key => function.arn }
}

output "function_role_arns" {
  description = "The functions' IAM role ARNs by role: feed_export is the principal a Security Lake owner's ocsf_role_arn must trust."
  value       = { for key, role in aws_iam_role.function : key => role.arn }
}

output "ack_url" {
  description = "The acknowledgement endpoint (ack.base_url of the rules)."
  value       = aws_lambda_function_url.ack_url.function_url
}

output "credentials_secret_arn" {
  description = "The secret to put {\"email\", \"token\"} in (SIGSCI_KIT_CREDENTIALS_SECRET)."
  value       = local.credentials_secret_arn
}

output "channels_secret_arn" {
  description = "The secret holding the channels' settings (webhook_url, routing_key, api_key, signing_key)."
  value       = aws_secretsmanager_secret.this["channels"].arn
}

output "ack_key_secret_arn" {
  description = "The generated ack-link signing key's secret."
  value       = aws_secretsmanager_secret.this["ack_key"].arn
}

output "glue_database" {
  description = "Glue database of the feed table."
  value       = aws_glue_catalog_database.feed.name
}

output "table" {
  description = "The feed table, database.table, for Athena."
  value       = "${aws_glue_catalog_database.feed.name}.${aws_glue_catalog_table.requests.name}"
}

output "athena_workgroup" {
  description = "Athena workgroup to run the feed queries in (results expire after 7 days)."
  value       = aws_athena_workgroup.feed.name
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify."
  value       = aws_sns_topic.alarms.arn
}

output "dead_letter_queue_url" {
  description = "The schedules' dead-letter queue."
  value       = aws_sqs_queue.schedule_dlq.url
}

output "ocsf_table" {
  description = "The OCSF table (database.requests_ocsf) when ocsf_glue_table is set, else null."
  value       = var.ocsf_glue_table ? "${aws_glue_catalog_database.feed.name}.${aws_glue_catalog_table.ocsf[0].name}" : null
}

output "security_lake_location" {
  description = "The Security Lake custom source's location the exporter writes to, when security_lake is set, else null."
  value       = local.security_lake ? aws_securitylake_custom_log_source.feed[0].provider_details[0].location : null
}
