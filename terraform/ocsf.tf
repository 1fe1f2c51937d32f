# The feed as OCSF HTTP Activity in Parquet (docs/ocsf-mapping.md), beside or instead of the NDJSON
# (feed_format). Two places it can go:
# - the exporter's Hive layout under {feed_prefix}/ocsf/corp=C/site=S/dt=YYYY-MM-DD/hour=HH/, with
#   an optional Glue table over it (ocsf_glue_table), partitions projected as for `requests`;
# - an Amazon Security Lake custom source (security_lake): the module registers it with the inputs
#   given (the role the lake's crawler assumes, the external id) and points the exporter at the
#   source's location in the lake bucket (ext/{source}/region=…/accountId=…/eventDay=YYYYMMDD/).
#   The lake's crawler makes its table there.
# Either way the exporter can write the OCSF through a role it assumes (ocsf_role_arn), as a lake in
# another account usually requires.

locals {
  ocsf          = var.feed_format != "ndjson"
  security_lake = var.security_lake != null
  lake_writer   = local.security_lake && var.ocsf_role_arn == null
  # The lake's location is s3://{lake bucket}/ext/{source}/; the exporter writes keys from ext/ on.
  lake_bucket = local.security_lake ? regex("^s3://([^/]+)/", aws_securitylake_custom_log_source.feed[0].provider_details[0].location)[0] : null
}

resource "aws_securitylake_custom_log_source" "feed" {
  count = local.security_lake ? 1 : 0

  source_name    = var.security_lake.source_name
  source_version = "1.0"
  event_classes  = ["HTTP_ACTIVITY"]

  configuration {
    crawler_configuration {
      role_arn = var.security_lake.crawler_role_arn
    }
    provider_identity {
      external_id = var.security_lake.external_id
      principal   = local.account_id
    }
  }

  lifecycle {
    precondition {
      condition     = local.ocsf
      error_message = "security_lake needs feed_format ocsf-parquet or both: with ndjson nothing is written to the lake."
    }
  }
}

# The exporter's access to its custom source's prefix in the lake bucket, when its own role writes
# there: with ocsf_role_arn the assumed role does, and this role needs no lake access.
data "aws_iam_policy_document" "security_lake" {
  count = local.lake_writer ? 1 : 0

  statement {
    sid       = "LakeObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["arn:${local.partition}:s3:::${local.lake_bucket}/ext/${var.security_lake.source_name}/*"]
  }

  statement {
    sid       = "LakeList"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${local.lake_bucket}"]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["ext/${var.security_lake.source_name}/*"]
    }
  }

  # Sweeping uploads a killed run left (ListMultipartUploads takes no prefix condition).
  statement {
    sid       = "LakeUploads"
    actions   = ["s3:ListBucketMultipartUploads"]
    resources = ["arn:${local.partition}:s3:::${local.lake_bucket}"]
  }
}

resource "aws_iam_role_policy" "security_lake" {
  count = local.lake_writer ? 1 : 0

  name   = "security-lake"
  role   = aws_iam_role.function["feed_export"].id
  policy = data.aws_iam_policy_document.security_lake[0].json
}

# The role the exporter assumes for the OCSF store (ocsf_role_arn): that ARN and no other.
data "aws_iam_policy_document" "ocsf_role" {
  count = var.ocsf_role_arn == null ? 0 : 1

  statement {
    sid       = "AssumeOcsfRole"
    actions   = ["sts:AssumeRole"]
    resources = [var.ocsf_role_arn]
  }
}

resource "aws_iam_role_policy" "ocsf_role" {
  count = var.ocsf_role_arn == null ? 0 : 1

  name   = "ocsf-assume-role"
  role   = aws_iam_role.function["feed_export"].id
  policy = data.aws_iam_policy_document.ocsf_role[0].json

  lifecycle {
    precondition {
      condition     = local.ocsf
      error_message = "ocsf_role_arn needs feed_format ocsf-parquet or both: with ndjson no OCSF is written."
    }
  }
}

resource "aws_glue_catalog_table" "ocsf" {
  count = var.ocsf_glue_table ? 1 : 0

  name          = "requests_ocsf"
  database_name = aws_glue_catalog_database.feed.name
  catalog_id    = local.glue_catalog_id
  description   = "Feed records of corp ${var.corp} as OCSF 1.1.0 HTTP Activity events, from ${local.feed_location}/ocsf"
  table_type    = "EXTERNAL_TABLE"

  parameters = merge({
    EXTERNAL                      = "TRUE"
    classification                = "parquet"
    "parquet.compression"         = "SNAPPY"
    "projection.enabled"          = "true"
    "projection.corp.type"        = "enum"
    "projection.corp.values"      = var.corp
    "projection.dt.type"          = "date"
    "projection.dt.format"        = "yyyy-MM-dd"
    "projection.dt.range"         = "NOW-${local.athena_projection_days}DAYS,NOW"
    "projection.dt.interval"      = "1"
    "projection.dt.interval.unit" = "DAYS"
    "projection.hour.type"        = "integer"
    "projection.hour.range"       = "0,23"
    "projection.hour.digits"      = "2"
    "storage.location.template"   = "s3://${local.bucket}/${var.feed_prefix}/ocsf/corp=$${corp}/site=$${site}/dt=$${dt}/hour=$${hour}/"
  }, local.site_projection)

  partition_keys {
    name = "corp"
    type = "string"
  }
  partition_keys {
    name = "site"
    type = "string"
  }
  partition_keys {
    name    = "dt"
    type    = "string"
    comment = "UTC day of the hour, YYYY-MM-DD"
  }
  partition_keys {
    name    = "hour"
    type    = "string"
    comment = "UTC hour, 00-23"
  }

  storage_descriptor {
    location      = "s3://${local.bucket}/${var.feed_prefix}/ocsf/"
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {
      name                  = "parquet"
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    }

    # The Parquet schema the exporter writes (crates/ocsf, `SCHEMA`; a test there keeps these equal).
    dynamic "columns" {
      for_each = [
        ["activity_id", "int"],
        ["activity_name", "string"],
        ["category_uid", "int"],
        ["category_name", "string"],
        ["class_uid", "int"],
        ["class_name", "string"],
        ["type_uid", "bigint"],
        ["type_name", "string"],
        ["severity_id", "int"],
        ["severity", "string"],
        ["status_id", "int"],
        ["status", "string"],
        ["status_code", "string"],
        ["time", "bigint"],
        ["metadata", "struct<version:string,uid:string,tenant_uid:string,log_name:string,product:struct<name:string,vendor_name:string>>"],
        ["src_endpoint", "struct<ip:string,name:string,hostname:string,location:struct<country:string>>"],
        ["dst_endpoint", "struct<hostname:string,name:string>"],
        ["http_request", "struct<http_method:string,version:string,user_agent:string,url:struct<scheme:string,hostname:string,path:string,query_string:string,url_string:string>,http_headers:array<struct<name:string,value:string>>>"],
        ["http_response", "struct<code:int,length:bigint,latency:int,http_headers:array<struct<name:string,value:string>>>"],
        ["tls", "struct<version:string,cipher:string>"],
        ["enrichments", "array<struct<name:string,value:string,type:string,provider:string,data:string>>"],
        ["observables", "array<struct<name:string,type_id:int,type:string,value:string>>"],
        ["unmapped", "string"],
      ]
      content {
        name = columns.value[0]
        type = columns.value[1]
      }
    }
  }

  lifecycle {
    precondition {
      condition     = local.ocsf && !local.security_lake
      error_message = "ocsf_glue_table is the table of the exporter's Hive layout: it needs feed_format ocsf-parquet or both, and no security_lake (the lake's crawler makes that table)."
    }
  }
}
