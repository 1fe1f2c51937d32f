//! Declarations the unit tests start from; each test changes only what it is about.

use std::collections::BTreeMap;

use crate::alert::DesiredAlert;
use crate::integration::DesiredIntegration;
use crate::model::{
    Address, IntegrationType, Location, ManagementPolicy, Metric, ThresholdOperator,
};
use crate::sensitive::Sensitive;

/// `AgentAlert ops/{name}` on `site`: below `threshold` over 10 minutes, enabled, managed.
pub fn alert(name: &str, site: &str, metric: Metric, threshold: i64) -> DesiredAlert {
    DesiredAlert {
        address: Address::new("AgentAlert", Some("ops"), name),
        site: site.into(),
        metric,
        operator: ThresholdOperator::LessThan,
        threshold,
        interval: 10,
        enabled: true,
        skip_notifications: false,
        management: ManagementPolicy::Full,
        remote_id: None,
    }
}

/// `Integration ops/{name}`: a Slack hook at `location` for `flag` events, managed.
pub fn hook(name: &str, location: Location, url: &str) -> DesiredIntegration {
    DesiredIntegration {
        address: Address::new("Integration", Some("ops"), name),
        location,
        kind: IntegrationType::Slack,
        url: Sensitive::new(url),
        events: vec!["flag".into()],
        fields: BTreeMap::new(),
        management: ManagementPolicy::Full,
        remote_id: None,
    }
}
