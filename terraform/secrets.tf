# Three secrets: the Signal Sciences API credentials (created empty, or an existing one), the
# channels' settings (webhook URLs, routing keys: filled by the user), and the key that signs
# acknowledgement links (generated here; it never enters the Terraform state).

locals {
  # {name}/{key with - for _}: the credentials only when credentials_secret_arn names none.
  secrets = merge(var.credentials_secret_arn == null ? {
    credentials = "Signal Sciences API credentials of corp ${var.corp}: {\"email\": ..., \"token\": ...}"
    } : {}, {
    channels = "agent-health channel settings of corp ${var.corp}: {\"webhook_url\", \"routing_key\", \"api_key\", \"signing_key\"} as the channels need"
    ack_key  = "Key that signs agent-health acknowledgement links of corp ${var.corp}: {\"key\": ...}"
  })
}

resource "aws_secretsmanager_secret" "this" {
  #checkov:skip=CKV2_AWS_57:no rotation function: Signal Sciences API tokens are rotated in its console (the functions re-read a rotated secret), the channels' third-party keys (Slack, PagerDuty, Opsgenie) at their source, the ack key by raising ack_key_version (a rotation function would invalidate links in flight without the grace the functions give)
  for_each = local.secrets

  name                    = "${local.name}/${replace(each.key, "_", "-")}"
  description             = each.value
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.secret_recovery_days
  tags                    = local.common_tags
}

# Ephemeral: generated on each apply that writes it, never stored in the plan or the state.
ephemeral "aws_secretsmanager_random_password" "ack_key" {
  password_length     = 64
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret_version" "ack_key" {
  secret_id                = aws_secretsmanager_secret.this["ack_key"].id
  secret_string_wo         = jsonencode({ key = ephemeral.aws_secretsmanager_random_password.ack_key.random_password })
  secret_string_wo_version = var.ack_key_version
}
