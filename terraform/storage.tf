# The feed bucket: the exported feed under feed_prefix, agent health's state and rules under
# health_prefix, Athena's results under athena-results/.

resource "aws_s3_bucket" "feed" {
  #checkov:skip=CKV_AWS_18:access logging needs a log bucket of the user's choosing; CloudTrail data events serve as well
  #checkov:skip=CKV_AWS_144:cross-region replication is a user's choice (cost); the feed can be exported again only within the API's 24 h
  #checkov:skip=CKV2_AWS_62:nothing consumes object events; Athena reads the prefix directly
  bucket        = local.bucket
  force_destroy = var.force_destroy
  tags          = local.common_tags
}

resource "aws_s3_bucket_ownership_controls" "feed" {
  bucket = aws_s3_bucket.feed.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "feed" {
  bucket                  = aws_s3_bucket.feed.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "feed" {
  bucket = aws_s3_bucket.feed.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "feed" {
  bucket = aws_s3_bucket.feed.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.kms ? "aws:kms" : "AES256"
      kms_master_key_id = var.kms_key_arn
    }
    # Fewer KMS calls: the exporter writes many parts an hour.
    bucket_key_enabled = local.kms
  }
}

data "aws_iam_policy_document" "feed_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.feed.arn, "${aws_s3_bucket.feed.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "feed" {
  bucket = aws_s3_bucket.feed.id
  policy = data.aws_iam_policy_document.feed_bucket.json
  # The public access block first: a policy put before it could race it.
  depends_on = [aws_s3_bucket_public_access_block.feed]
}

resource "aws_s3_bucket_lifecycle_configuration" "feed" {
  bucket = aws_s3_bucket.feed.id

  # A killed invocation leaves its multipart uploads behind; they cost storage until aborted.
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_upload_days
    }

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
  }

  # The feed's own abort keeps the rule valid (S3 refuses a rule without an action) when neither
  # transition nor expiration is set.
  rule {
    id     = "feed"
    status = "Enabled"

    filter {
      prefix = "${var.feed_prefix}/"
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_upload_days
    }

    dynamic "transition" {
      for_each = var.feed_transition_days == null ? [] : [var.feed_transition_days]
      content {
        days          = transition.value
        storage_class = var.feed_transition_storage_class
      }
    }

    dynamic "expiration" {
      for_each = var.feed_expiration_days == null ? [] : [var.feed_expiration_days]
      content {
        days = expiration.value
      }
    }
  }

  rule {
    id     = "athena-results"
    status = "Enabled"

    filter {
      prefix = "${local.athena_prefix}/"
    }

    expiration {
      days = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.feed]
}

# The rules document both health functions read (SIGSCI_KIT_RULES_URL): the user's rules with the
# ack endpoint and its signing key filled in. An object rather than an inline variable, because the
# ack function's own URL is in it (an environment variable would make the function depend on itself).
locals {
  rules_input      = yamldecode(trimspace(var.rules) == "" ? "{}" : var.rules)
  channel_secret   = "secretsmanager:${aws_secretsmanager_secret.this["channels"].arn}"
  secret_channels  = ["slack", "pagerduty", "opsgenie", "webhook", "email"]
  rules_channels   = try(local.rules_input.channels, [])
  rules_ack_input  = try(local.rules_input.ack, {})
  rules_ack_module = { base_url = trimsuffix(aws_lambda_function_url.ack_url.function_url, "/"), secret = "secretsmanager:${aws_secretsmanager_secret.this["ack_key"].arn}" }
  rules_document = merge(local.rules_input, {
    ack = merge(local.rules_ack_module, local.rules_ack_input)
    channels = [
      for channel in local.rules_channels : merge(
        channel,
        contains(local.secret_channels, try(channel.type, "")) && try(channel.secret, null) == null ? tomap({ secret = local.channel_secret }) : tomap({})
      )
    ]
  })
}

resource "aws_s3_object" "rules" {
  bucket       = aws_s3_bucket.feed.id
  key          = local.rules_key
  content      = jsonencode(local.rules_document)
  content_type = "application/json"
  tags         = local.common_tags

  depends_on = [aws_s3_bucket_server_side_encryption_configuration.feed]
}
