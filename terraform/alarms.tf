# Alarms to one SNS topic. The metrics are the ones the functions print as EMF:
#   SigsciKit/FeedExport  (Corp, Site): HoursLost, LagSeconds, ... (crates/feed-export/src/metrics.rs)
#   SigsciKit/AgentHealth (Corp):       RunDuration, SitesEvaluated, ... once per finished evaluation
#                                       (crates/agent-health/src/metrics.rs), the heartbeat below
# The feed metrics carry a Site dimension whose values the module may not know, so those alarms
# aggregate every site of the corp with a Metrics Insights query.

resource "aws_sns_topic" "alarms" {
  name              = "${local.name}-alarms"
  kms_master_key_id = var.kms_key_arn
  tags              = local.common_tags
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  alarm_actions       = [aws_sns_topic.alarms.arn]
  feed_metrics_schema = "SCHEMA(\"SigsciKit/FeedExport\", Corp, Site)"
  # Every alarm by key: one metric (namespace, metric, dimensions, statistic, period) or a Metrics
  # Insights query (query), compared with threshold; what an alarm does not set is alarm_defaults'.
  alarm_defaults = {
    namespace          = null
    metric             = null
    dimensions         = null
    statistic          = null
    period             = null
    query              = null
    evaluation_periods = 1
    datapoints         = null
    comparison         = "GreaterThanThreshold"
    threshold          = 0
    missing_data       = "notBreaching"
  }
  # Function errors: the scheduled ones alarm on two failed runs out of three, the ack pages on any.
  error_alarms = {
    feed_export  = { period = 900, evaluation_periods = 3, datapoints = 2 }
    agent_health = { period = 300, evaluation_periods = 3, datapoints = 2 }
    ack_url      = { period = 300, evaluation_periods = 1, datapoints = 1 }
  }
  function_error_alarms = { for key, errors in local.error_alarms : "${key}_errors" => merge(errors, {
    name        = "${local.function_names[key]}-errors"
    description = "${local.function_names[key]} failed (README: runbook, \"function errors\")."
    namespace   = "AWS/Lambda"
    metric      = "Errors"
    dimensions  = { FunctionName = local.function_names[key] }
    statistic   = "Sum"
  }) }
  # The corp's alarms (tests/terraform/structure.py checks their SigsciKit metrics against the code).
  alarms = {
    hours_lost = {
      name        = "${local.name}-feed-hours-lost"
      description = "Feed hours of corp ${var.corp} left the API's retention unexported: that data is gone (README: runbook, \"hours lost\")."
      query       = { id = "lost", label = "HoursLost, every site", expression = "SELECT SUM(HoursLost) FROM ${local.feed_metrics_schema} WHERE Corp = '${var.corp}'", period = 900 }
    }
    feed_lag = {
      name               = "${local.name}-feed-lag"
      description        = "A site's newest complete feed hour of corp ${var.corp} ended more than ${var.feed_lag_alarm_hours} h ago (README: runbook, \"feed lag\")."
      query              = { id = "lag", label = "LagSeconds, worst site", expression = "SELECT MAX(LagSeconds) FROM ${local.feed_metrics_schema} WHERE Corp = '${var.corp}'", period = 900 }
      evaluation_periods = 2
      threshold          = var.feed_lag_alarm_hours * 3600
      # Every run reports each site's lag: none at all means the exporter stopped (schedule
      # disabled, every run crashing before its metrics), which is as late as data gets.
      missing_data = "breaching"
    }
    # Watch the watcher: every finished evaluation prints one RunDuration sample; none for
    # heartbeat_alarm_minutes (stopped schedule, crash before the metrics, throttling) is breaching.
    health_heartbeat = {
      name         = "${local.name}-agent-health-heartbeat"
      description  = "agent-health of corp ${var.corp} finished no evaluation in ${var.heartbeat_alarm_minutes} minutes (README: runbook, \"heartbeat missing\")."
      namespace    = "SigsciKit/AgentHealth"
      metric       = "RunDuration"
      dimensions   = { Corp = var.corp }
      statistic    = "SampleCount"
      period       = var.heartbeat_alarm_minutes * 60
      comparison   = "LessThanThreshold"
      threshold    = 1
      missing_data = "breaching"
    }
    schedule_dlq = {
      name        = "${local.name}-schedule-dlq"
      description = "The scheduler could not invoke a sigsci-kit function of corp ${var.corp} (README: runbook, \"dead-letter queue\")."
      namespace   = "AWS/SQS"
      metric      = "ApproximateNumberOfMessagesVisible"
      dimensions  = { QueueName = aws_sqs_queue.schedule_dlq.name }
      statistic   = "Maximum"
      period      = 300
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = { for key, alarm in merge(local.function_error_alarms, local.alarms) : key => merge(local.alarm_defaults, alarm) if var.create_alarms }

  alarm_name          = each.value.name
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = each.value.period
  evaluation_periods  = each.value.evaluation_periods
  datapoints_to_alarm = each.value.datapoints
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  treat_missing_data  = each.value.missing_data
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.common_tags

  dynamic "metric_query" {
    for_each = each.value.query == null ? [] : [each.value.query]
    content {
      id          = metric_query.value.id
      label       = metric_query.value.label
      expression  = metric_query.value.expression
      period      = metric_query.value.period
      return_data = true
    }
  }
}
