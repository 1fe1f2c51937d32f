output "corps" {
  description = "Per corp: bucket, feed location, functions, ack URL, table, workgroup, alarm topic and secrets."
  value = {
    for corp, kit in module.sigsci_kit : corp => {
      bucket                 = kit.bucket
      feed_location          = kit.feed_location
      state_location         = kit.state_location
      functions              = kit.function_names
      ack_url                = kit.ack_url
      table                  = kit.table
      athena_workgroup       = kit.athena_workgroup
      alarm_topic_arn        = kit.alarm_topic_arn
      credentials_secret_arn = kit.credentials_secret_arn
      channels_secret_arn    = kit.channels_secret_arn
    }
  }
}
