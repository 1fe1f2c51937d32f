# Least privilege: each function its own role, its own keys in the bucket, its own secrets and its
# own log group. No statement has a `*` resource.

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

locals {
  bucket_arn = aws_s3_bucket.feed.arn
  # What each function may do besides writing its own log group (and using the KMS key, if any).
  # bucket: its statements on the bucket, in policy order; prefixes (not null) limits s3:ListBucket to
  # them (also what turns a missing key into 404 rather than 403).
  # secrets: its own secrets. The exporter the credentials; the evaluator the credentials, the channels
  # and the signing key (it signs links); the ack pages the signing key (they verify links) and the
  # channels (they acknowledge incidents), never the API credentials.
  function_access = {
    # The feed prefix; sweeping uploads a killed run left (ListMultipartUploads takes no prefix condition).
    feed_export = {
      bucket = [
        { sid = "FeedObjects", actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"], resources = ["${local.bucket_arn}/${var.feed_prefix}/*"], prefixes = null },
        { sid = "FeedList", actions = ["s3:ListBucket"], resources = [local.bucket_arn], prefixes = ["${var.feed_prefix}/*"] },
        { sid = "FeedUploads", actions = ["s3:ListBucketMultipartUploads"], resources = [local.bucket_arn], prefixes = null },
      ]
      secrets_sid = "Credentials"
      secrets     = [local.credentials_secret_arn]
    }
    # The state prefix, the rules, the channels' secrets.
    agent_health = {
      bucket = [
        { sid = "State", actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], resources = ["${local.bucket_arn}/${local.state_prefix}/*"], prefixes = null },
        { sid = "Rules", actions = ["s3:GetObject"], resources = ["${local.bucket_arn}/${local.rules_key}"], prefixes = null },
        { sid = "StateList", actions = ["s3:ListBucket"], resources = [local.bucket_arn], prefixes = ["${local.state_prefix}/*", local.rules_key] },
      ]
      secrets_sid = "Secrets"
      secrets     = concat([local.credentials_secret_arn, aws_secretsmanager_secret.this["channels"].arn, aws_secretsmanager_secret.this["ack_key"].arn], var.additional_secret_arns)
    }
    # The state prefix (acknowledgements are recorded there), the rules, the signing key, and the
    # channels' secrets: an acknowledgement is passed on to PagerDuty/Opsgenie incidents at once.
    ack_url = {
      bucket = [
        { sid = "State", actions = ["s3:GetObject", "s3:PutObject"], resources = ["${local.bucket_arn}/${local.state_prefix}/*"], prefixes = null },
        { sid = "Rules", actions = ["s3:GetObject"], resources = ["${local.bucket_arn}/${local.rules_key}"], prefixes = null },
        { sid = "StateList", actions = ["s3:ListBucket"], resources = [local.bucket_arn], prefixes = ["${local.state_prefix}/*", local.rules_key] },
      ]
      secrets_sid = "Secrets"
      secrets     = concat([aws_secretsmanager_secret.this["ack_key"].arn, aws_secretsmanager_secret.this["channels"].arn], var.additional_secret_arns)
    }
  }
}

data "aws_iam_policy_document" "function" {
  for_each = local.function_access

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }

  dynamic "statement" {
    for_each = each.value.bucket
    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = statement.value.resources

      dynamic "condition" {
        for_each = statement.value.prefixes == null ? [] : [statement.value.prefixes]
        content {
          test     = "StringLike"
          variable = "s3:prefix"
          values   = condition.value
        }
      }
    }
  }

  statement {
    sid       = each.value.secrets_sid
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = each.value.secrets
  }

  dynamic "statement" {
    for_each = local.kms ? [var.kms_key_arn] : []
    content {
      sid       = "Key"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each = local.function_names

  name               = each.value
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = local.common_tags
}

resource "aws_iam_role_policy" "function" {
  for_each = local.function_names

  name   = replace(each.key, "_", "-")
  role   = aws_iam_role.function[each.key].id
  policy = data.aws_iam_policy_document.function[each.key].json
}

# ---- the scheduler: invoke the two scheduled functions, dead-letter to its queue ----------------

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "Invoke"
    actions   = ["lambda:InvokeFunction"]
    resources = [for key, expression in local.schedules : aws_lambda_function.function[key].arn]
  }

  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.schedule_dlq.arn]
  }

  dynamic "statement" {
    for_each = local.kms ? [var.kms_key_arn] : []
    content {
      sid       = "Key"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${local.name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
  tags               = local.common_tags
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "scheduler"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}
