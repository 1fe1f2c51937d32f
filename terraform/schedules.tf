# EventBridge Scheduler: the feed export every 15 minutes, agent health every 5 (variables). What the
# scheduler cannot deliver after its retries goes to the dead-letter queue, which alarms when not empty.

resource "aws_sqs_queue" "schedule_dlq" {
  name                      = "${local.name}-schedule-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = local.kms ? null : true
  kms_master_key_id         = var.kms_key_arn
  tags                      = local.common_tags
}

locals {
  # The scheduled functions (local.functions with a schedule): their schedule expressions.
  schedules = { for key, function in local.functions : key => function.schedule if function.schedule != null }
}

resource "aws_scheduler_schedule" "function" {
  for_each = local.schedules

  name                = "${local.name}-${replace(each.key, "_", "-")}"
  description         = "sigsci-kit ${replace(each.key, "_", " ")} of corp ${var.corp}"
  schedule_expression = each.value
  state               = var.schedules_enabled ? "ENABLED" : "DISABLED"
  kms_key_arn         = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.function[each.key].arn
    role_arn = aws_iam_role.scheduler.arn
    # The functions ignore the scheduled event's fields; `{}` is the event they document.
    input = jsonencode({})

    retry_policy {
      maximum_retry_attempts       = var.schedule_retry_attempts
      maximum_event_age_in_seconds = var.schedule_max_event_age
    }

    dead_letter_config {
      arn = aws_sqs_queue.schedule_dlq.arn
    }
  }

  depends_on = [aws_iam_role_policy.scheduler]
}
