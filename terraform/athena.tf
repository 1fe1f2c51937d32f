# The feed as an Athena table: one JSON record per line, gzip, partitions projected from the keys
# the exporter writes ({feed_prefix}/corp=C/site=S/dt=YYYY-MM-DD/hour=HH/part-NNNNN.ndjson.gz),
# so queries work right after the first export with no crawler and no MSCK REPAIR. Objects whose
# names start with `_` (_manifest.json, _lease.json, _ledger.json) are skipped by Athena.
#
# An hour is complete when its _manifest.json exists; until then its directory may hold some of its
# parts. Readers restrict to complete hours as README ("Deploy to AWS", Athena) describes.

locals {
  glue_catalog_id        = coalesce(var.glue_catalog_id, local.account_id)
  athena_projection_days = coalesce(var.athena_projection_days, var.feed_expiration_days, 400)
  # Known sites: an enum. Otherwise injected: every query names its sites (site = '…' or IN (…)).
  site_projection = length(var.sites) > 0 ? tomap({
    "projection.site.type"   = "enum"
    "projection.site.values" = join(",", var.sites)
    }) : tomap({
    "projection.site.type" = "injected"
  })
}

resource "aws_glue_catalog_database" "feed" {
  name        = replace(local.name, "-", "_")
  catalog_id  = local.glue_catalog_id
  description = "sigsci-kit: the Signal Sciences request feed of corp ${var.corp}"
}

resource "aws_glue_catalog_table" "requests" {
  name          = "requests"
  database_name = aws_glue_catalog_database.feed.name
  catalog_id    = local.glue_catalog_id
  description   = "Feed records of corp ${var.corp}, one per request, from ${local.feed_location}"
  table_type    = "EXTERNAL_TABLE"

  parameters = merge({
    EXTERNAL                      = "TRUE"
    classification                = "json"
    compressionType               = "gzip"
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
    "storage.location.template"   = "s3://${local.bucket}/${var.feed_prefix}/corp=$${corp}/site=$${site}/dt=$${dt}/hour=$${hour}/"
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
    location      = "s3://${local.bucket}/${var.feed_prefix}/"
    input_format  = "org.apache.hadoop.mapred.TextInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"

    ser_de_info {
      name                  = "json"
      serialization_library = "org.openx.data.jsonserde.JsonSerDe"
      parameters = {
        # The feed's keys are camelCase (remoteIP, serverName); Glue columns are lower case.
        "case.insensitive"      = "TRUE"
        "ignore.malformed.json" = "FALSE"
      }
    }

    # The feed record as the API sends it (docs of GET /corps/{corp}/sites/{site}/feed/requests).
    dynamic "columns" {
      for_each = [
        ["id", "string"],
        ["serverhostname", "string"],
        ["servername", "string"],
        ["remoteip", "string"],
        ["remotehostname", "string"],
        ["remotecountrycode", "string"],
        ["useragent", "string"],
        ["timestamp", "string"],
        ["method", "string"],
        ["protocol", "string"],
        ["scheme", "string"],
        ["tlsprotocol", "string"],
        ["tlscipher", "string"],
        ["path", "string"],
        ["uri", "string"],
        ["responsecode", "int"],
        ["agentresponsecode", "int"],
        ["responsesize", "bigint"],
        ["responsemillis", "bigint"],
        ["headersin", "array<array<string>>"],
        ["headersout", "array<array<string>>"],
        ["tags", "array<struct<type:string,location:string,value:string,detector:string>>"],
      ]
      content {
        name = columns.value[0]
        type = columns.value[1]
      }
    }
  }
}

resource "aws_athena_workgroup" "feed" {
  name          = local.name
  description   = "sigsci-kit feed queries of corp ${var.corp}"
  force_destroy = true
  tags          = local.common_tags

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.athena_bytes_scanned_cutoff

    result_configuration {
      output_location = "s3://${local.bucket}/${local.athena_prefix}/"

      encryption_configuration {
        encryption_option = local.kms ? "SSE_KMS" : "SSE_S3"
        kms_key_arn       = var.kms_key_arn
      }
    }
  }
}
