# The three functions: provided.al2023, handler `bootstrap` (cargo lambda's binary name), the zips
# scripts/package.sh builds. Logs go to their own groups in Lambda's JSON format; the EMF metric lines
# the functions print on standard output are JSON already and pass through as they are.

resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_338:retention is log_retention_days (default 30): operational logs, the feed itself is in S3
  for_each = local.function_names

  name              = "/aws/lambda/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = local.common_tags
}

resource "aws_lambda_function" "function" {
  #checkov:skip=CKV_AWS_117:feed-export reaches only the Signal Sciences API and AWS public endpoints, agent-health also the channels' endpoints, ack-url serves a public function URL and reads only S3 and Secrets Manager; a VPC would need a NAT gateway for no gain
  #checkov:skip=CKV_AWS_116:feed-export and agent-health are scheduled: the next run redoes the work, failures alarm through Errors and the heartbeat, undelivered events go to the scheduler's DLQ; ack-url is invoked synchronously by its function URL, there is no asynchronous event to keep
  #checkov:skip=CKV_AWS_272:zips are built by scripts/package.sh; code signing needs a Signer profile the user may not have
  for_each = local.functions

  function_name                  = local.function_names[each.key]
  description                    = each.value.description
  role                           = aws_iam_role.function[each.key].arn
  runtime                        = "provided.al2023"
  architectures                  = [var.architecture]
  handler                        = "bootstrap"
  filename                       = each.value.zip
  source_code_hash               = filebase64sha256(each.value.zip)
  timeout                        = each.value.timeout
  memory_size                    = each.value.memory
  reserved_concurrent_executions = each.value.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = { for name, value in each.value.environment : name => value if value != null }
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.function[each.key].name
    application_log_level = var.log_level
    system_log_level      = "WARN"
  }

  tracing_config {
    mode = "PassThrough"
  }

  tags       = local.common_tags
  depends_on = [aws_iam_role_policy.function]
}

# Auth NONE: every link carries its own HMAC signature, expiry and episode; anything else gets 403.
# The provider adds the public InvokeFunctionUrl and InvokedViaFunctionUrl grants with it.
resource "aws_lambda_function_url" "ack_url" {
  #checkov:skip=CKV_AWS_258:the links are opened from chat and e-mail by people without AWS credentials; each carries its own signature
  function_name      = aws_lambda_function.function["ack_url"].function_name
  authorization_type = "NONE"
}

# Asynchronous invocations (the schedules): no Lambda-side retries, because the next scheduled run
# does the same work, and a retry would only queue behind the reserved concurrency.
resource "aws_lambda_function_event_invoke_config" "scheduled" {
  for_each = local.schedules

  function_name                = aws_lambda_function.function[each.key].function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = var.schedule_max_event_age
}
