//! Reading remote state into the plan's terms, and carrying out planned changes. Shared by the
//! reconcilers and `sigsci-kit config`.

use std::collections::BTreeMap;

use sigsci::{
    AlertBody, EntryChanges, IntegrationBody, IntegrationUpdate, ListBody, ListScope, ListUpdate,
};
use sigsci_config::alert::{AGENT_ALERT_ACTION, AGENT_ALERT_FIELD_NAME, AlertSettings};
use sigsci_config::integration::IntegrationSettings;
use sigsci_config::{
    AlertChange, Change, IntegrationChange, ListChange, Location, ObservedAlert,
    ObservedIntegration, ObservedList, Op, Sensitive,
};

/// The site's alerts.
pub async fn observe_alerts(
    client: &sigsci::Client,
    site: &str,
) -> sigsci::Result<Vec<ObservedAlert>> {
    let alerts = client.list_alerts(site).await?;
    Ok(alerts
        .into_iter()
        .map(|alert| ObservedAlert {
            id: alert.id,
            tag_name: alert.tag_name,
            long_name: alert.long_name,
            operator: alert.operator,
            threshold: alert.threshold,
            interval: alert.interval,
            enabled: alert.enabled,
            skip_notifications: alert.skip_notifications,
        })
        .collect())
}

/// The integrations of a site or of the corp. `fields_digest` says what is known about the
/// write-only fields of each id (see [`ObservedIntegration::fields_digest`]).
pub async fn observe_integrations(
    client: &sigsci::Client,
    location: &Location,
    fields_digest: impl Fn(&str) -> Option<String>,
) -> sigsci::Result<Vec<ObservedIntegration>> {
    let integrations = match location {
        Location::Site(site) => client.list_site_integrations(site).await?,
        Location::Corp => client.list_corp_integrations().await?,
    };
    Ok(integrations
        .into_iter()
        .map(|integration| ObservedIntegration {
            fields_digest: fields_digest(&integration.id),
            id: integration.id,
            kind: integration.integration_type,
            url: Sensitive::new(integration.url),
            events: integration.events,
        })
        .collect())
}

fn list_scope(location: &Location) -> ListScope<'_> {
    match location {
        Location::Site(site) => ListScope::Site(site),
        Location::Corp => ListScope::Corp,
    }
}

/// The lists of a site or of the corp.
pub async fn observe_lists(
    client: &sigsci::Client,
    location: &Location,
) -> sigsci::Result<Vec<ObservedList>> {
    let lists = client.list_lists(list_scope(location)).await?;
    Ok(lists
        .into_iter()
        .map(|list| ObservedList {
            id: list.id,
            name: list.name,
            list_type: list.list_type,
            description: list.description,
            entries: list.entries,
        })
        .collect())
}

/// The id of the remote object after a change; `None` once deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub remote_id: Option<String>,
}

/// Carry out one change. Deleting something already gone (a real 404) counts as done.
pub async fn execute(client: &sigsci::Client, change: &Change) -> sigsci::Result<Applied> {
    match change {
        Change::Alert(change) => execute_alert(client, change).await,
        Change::Integration(change) => execute_integration(client, change).await,
        Change::List(change) => execute_list(client, change).await,
    }
}

async fn execute_list(client: &sigsci::Client, change: &ListChange) -> sigsci::Result<Applied> {
    let scope = list_scope(&change.location);
    match &change.op {
        Op::Create(write) => {
            let body = ListBody {
                name: write.name.clone(),
                list_type: write.list_type.as_str().to_string(),
                description: write.description.clone().unwrap_or_default(),
                entries: write.additions.clone(),
            };
            let created = client.create_list(scope, &body).await?;
            Ok(Applied {
                remote_id: Some(created.id),
            })
        }
        Op::Update { id, desired, .. } => {
            let update = ListUpdate {
                description: desired.description.clone(),
                entries: EntryChanges {
                    additions: desired.additions.clone(),
                    deletions: desired.deletions.clone(),
                },
            };
            client.update_list(scope, id, &update).await?;
            Ok(Applied {
                remote_id: Some(id.clone()),
            })
        }
        Op::Delete { id } => {
            ignore_not_found(client.delete_list(scope, id).await)?;
            Ok(Applied { remote_id: None })
        }
    }
}

async fn execute_alert(client: &sigsci::Client, change: &AlertChange) -> sigsci::Result<Applied> {
    let site = change.site.as_str();
    match &change.op {
        Op::Create(settings) => {
            let body = AlertBody {
                tag_name: Some(settings.tag_name.clone()),
                long_name: Some(settings.long_name.clone()),
                action: Some(AGENT_ALERT_ACTION.to_string()),
                field_name: Some(AGENT_ALERT_FIELD_NAME.to_string()),
                ..managed_alert_fields(settings)
            };
            let created = client.create_alert(site, &body).await?;
            Ok(Applied {
                remote_id: Some(created.id),
            })
        }
        Op::Update { id, desired, .. } => {
            client
                .update_alert(site, id, &managed_alert_fields(desired))
                .await?;
            Ok(Applied {
                remote_id: Some(id.clone()),
            })
        }
        Op::Delete { id } => {
            ignore_not_found(client.delete_alert(site, id).await)?;
            Ok(Applied { remote_id: None })
        }
    }
}

/// The fields a declaration manages; an update sends only these.
fn managed_alert_fields(settings: &AlertSettings) -> AlertBody {
    AlertBody {
        operator: Some(settings.operator.clone()),
        threshold: Some(settings.threshold),
        interval: Some(settings.interval),
        enabled: Some(settings.enabled),
        skip_notifications: Some(settings.skip_notifications),
        ..AlertBody::default()
    }
}

async fn execute_integration(
    client: &sigsci::Client,
    change: &IntegrationChange,
) -> sigsci::Result<Applied> {
    match (&change.op, &change.location) {
        (Op::Create(settings), location) => {
            let body = IntegrationBody {
                integration_type: settings.kind.as_str().to_string(),
                url: settings.url.expose().to_string(),
                events: settings.events.clone(),
                fields: exposed_fields(settings),
            };
            let created = match location {
                Location::Site(site) => client.create_site_integration(site, &body).await?,
                Location::Corp => client.create_corp_integration(&body).await?,
            };
            Ok(Applied {
                remote_id: Some(created.id),
            })
        }
        (Op::Update { id, desired, .. }, location) => {
            let body = IntegrationUpdate {
                url: Some(desired.url.expose().to_string()),
                events: Some(desired.events.clone()),
                fields: exposed_fields(desired),
            };
            match location {
                Location::Site(site) => client.update_site_integration(site, id, &body).await?,
                Location::Corp => client.update_corp_integration(id, &body).await?,
            }
            Ok(Applied {
                remote_id: Some(id.clone()),
            })
        }
        (Op::Delete { id }, Location::Site(site)) => {
            ignore_not_found(client.delete_site_integration(site, id).await)?;
            Ok(Applied { remote_id: None })
        }
        (Op::Delete { id }, Location::Corp) => {
            ignore_not_found(client.delete_corp_integration(id).await)?;
            Ok(Applied { remote_id: None })
        }
    }
}

fn exposed_fields(settings: &IntegrationSettings) -> Option<BTreeMap<String, String>> {
    (!settings.fields.is_empty()).then(|| {
        settings
            .fields
            .iter()
            .map(|(key, value)| (key.clone(), value.expose().to_string()))
            .collect()
    })
}

fn ignore_not_found(result: sigsci::Result<()>) -> sigsci::Result<()> {
    match result {
        Err(sigsci::Error::NotFound { .. }) => Ok(()),
        other => other,
    }
}
