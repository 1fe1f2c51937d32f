//! Reading remote state into the plan's terms, and carrying out planned changes. Shared by the
//! reconcilers and `sigsci-kit config`.
//!
//! Through an operator [`Account`] every call waits for the account's rate limiter, listings are
//! shared for a few seconds between the objects of a site, and our own writes update them; through
//! a plain [`sigsci::Client`] (the CLI) calls go straight out.

use std::collections::{BTreeMap, HashSet};

use sigsci::{
    AlertBody, EntryChanges, IntegrationBody, IntegrationUpdate, ListBody, ListScope, ListUpdate,
};
use sigsci_config::alert::{AGENT_ALERT_ACTION, AGENT_ALERT_FIELD_NAME, AlertSettings};
use sigsci_config::integration::IntegrationSettings;
use sigsci_config::{
    AlertChange, Change, IntegrationChange, ListChange, Location, ObservedAlert,
    ObservedIntegration, ObservedList, Op, Sensitive,
};

use crate::cache::{Identified, ListCache};
use crate::connect::Account;

/// What remote calls go through: a plain client, or an operator account's client.
pub trait Endpoint: Sync {
    fn client(&self) -> &sigsci::Client;

    /// The shared limiter and listings; none for a plain client.
    fn account(&self) -> Option<&Account> {
        None
    }
}

impl Endpoint for sigsci::Client {
    fn client(&self) -> &sigsci::Client {
        self
    }
}

/// Waits for the account's rate limiter (`calls` HTTP calls), if there is one.
async fn throttle(endpoint: &impl Endpoint, calls: u32) {
    if let Some(account) = endpoint.account() {
        for _ in 0..calls {
            account.limiter.acquire().await;
        }
    }
}

/// A listing through the account's cache, or straight from the API.
async fn listing<T, Fut>(
    endpoint: &impl Endpoint,
    cache: impl Fn(&Account) -> &ListCache<T>,
    key: &str,
    list: impl FnOnce() -> Fut,
) -> sigsci::Result<Vec<T>>
where
    T: Clone + Identified,
    Fut: Future<Output = sigsci::Result<Vec<T>>>,
{
    match endpoint.account() {
        Some(account) => {
            cache(account)
                .get_or_list(key, || async {
                    account.limiter.acquire().await;
                    list().await
                })
                .await
        }
        None => list().await,
    }
}

fn location_key(location: &Location) -> String {
    match location {
        Location::Site(site) => format!("site/{site}"),
        Location::Corp => "corp".to_string(),
    }
}

fn alert_cache(account: &Account) -> &ListCache<sigsci::Alert> {
    &account.alerts
}

fn integration_cache(account: &Account) -> &ListCache<sigsci::Integration> {
    &account.integrations
}

fn list_cache(account: &Account) -> &ListCache<sigsci::RuleList> {
    &account.lists
}

/// The site's alerts.
pub async fn observe_alerts(
    client: &impl Endpoint,
    site: &str,
) -> sigsci::Result<Vec<ObservedAlert>> {
    let alerts = listing(client, alert_cache, site, || {
        client.client().list_alerts(site)
    })
    .await?;
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
    client: &impl Endpoint,
    location: &Location,
    fields_digest: impl Fn(&str) -> Option<String>,
) -> sigsci::Result<Vec<ObservedIntegration>> {
    let key = location_key(location);
    let integrations = listing(client, integration_cache, &key, || async {
        match location {
            Location::Site(site) => client.client().list_site_integrations(site).await,
            Location::Corp => client.client().list_corp_integrations().await,
        }
    })
    .await?;
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

/// Drop the cached listing of a location's integrations: the next one reads the API.
pub async fn forget_integrations(client: &impl Endpoint, location: &Location) {
    if let Some(account) = client.account() {
        account
            .integrations
            .invalidate(&location_key(location))
            .await;
    }
}

fn list_scope(location: &Location) -> ListScope<'_> {
    match location {
        Location::Site(site) => ListScope::Site(site),
        Location::Corp => ListScope::Corp,
    }
}

/// The lists of a site or of the corp.
pub async fn observe_lists(
    client: &impl Endpoint,
    location: &Location,
) -> sigsci::Result<Vec<ObservedList>> {
    let key = location_key(location);
    let lists = listing(client, list_cache, &key, || {
        client.client().list_lists(list_scope(location))
    })
    .await?;
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
pub async fn execute(client: &impl Endpoint, change: &Change) -> sigsci::Result<Applied> {
    match change {
        Change::Alert(change) => execute_alert(client, change).await,
        Change::Integration(change) => execute_integration(client, change).await,
        Change::List(change) => execute_list(client, change).await,
    }
}

async fn execute_list(client: &impl Endpoint, change: &ListChange) -> sigsci::Result<Applied> {
    let scope = list_scope(&change.location);
    let key = location_key(&change.location);
    throttle(client, 1).await;
    let result = match &change.op {
        Op::Create(write) => {
            let body = ListBody {
                name: write.name.clone(),
                list_type: write.list_type.as_str().to_string(),
                description: write.description.clone().unwrap_or_default(),
                entries: write.additions.clone(),
            };
            client
                .client()
                .create_list(scope, &body)
                .await
                .map(Written::Object)
        }
        Op::Update { id, desired, .. } => {
            let update = ListUpdate {
                description: desired.description.clone(),
                entries: EntryChanges {
                    additions: desired.additions.clone(),
                    deletions: desired.deletions.clone(),
                },
            };
            client
                .client()
                .update_list(scope, id, &update)
                .await
                .map(Written::Object)
        }
        Op::Delete { id } => ignore_not_found(client.client().delete_list(scope, id).await)
            .map(|()| Written::Deleted(id)),
    };
    record(client, list_cache, &key, result).await
}

async fn execute_alert(client: &impl Endpoint, change: &AlertChange) -> sigsci::Result<Applied> {
    let site = change.site.as_str();
    throttle(client, 1).await;
    let result = match &change.op {
        Op::Create(settings) => {
            let body = AlertBody {
                tag_name: Some(settings.tag_name.clone()),
                long_name: Some(settings.long_name.clone()),
                action: Some(AGENT_ALERT_ACTION.to_string()),
                field_name: Some(AGENT_ALERT_FIELD_NAME.to_string()),
                ..managed_alert_fields(settings)
            };
            client
                .client()
                .create_alert(site, &body)
                .await
                .map(Written::Object)
        }
        Op::Update { id, desired, .. } => client
            .client()
            .update_alert(site, id, &managed_alert_fields(desired))
            .await
            .map(Written::Object),
        Op::Delete { id } => ignore_not_found(client.client().delete_alert(site, id).await)
            .map(|()| Written::Deleted(id)),
    };
    record(client, alert_cache, site, result).await
}

/// What a write did to the remote object.
enum Written<'a, T> {
    /// Created or updated: as the API returned it.
    Object(T),
    /// Updated, but the API returned nothing to show.
    Updated(&'a str),
    Deleted(&'a str),
}

/// The write's effect on the account's listing of `key`, and its result. A write whose effect
/// is unknown (no object returned, or a failure) drops the listing.
async fn record<T: Clone + Identified>(
    client: &impl Endpoint,
    cache: impl Fn(&Account) -> &ListCache<T>,
    key: &str,
    result: sigsci::Result<Written<'_, T>>,
) -> sigsci::Result<Applied> {
    let cache = client.account().map(cache);
    match result {
        Ok(Written::Object(item)) => {
            let remote_id = Some(item.id().to_string());
            if let Some(cache) = cache {
                cache.upsert(key, item).await;
            }
            Ok(Applied { remote_id })
        }
        Ok(Written::Deleted(id)) => {
            if let Some(cache) = cache {
                cache.remove(key, id).await;
            }
            Ok(Applied { remote_id: None })
        }
        Ok(Written::Updated(id)) => {
            if let Some(cache) = cache {
                cache.invalidate(key).await;
            }
            Ok(Applied {
                remote_id: Some(id.to_string()),
            })
        }
        Err(error) => {
            if let Some(cache) = cache {
                cache.invalidate(key).await;
            }
            Err(error)
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
    client: &impl Endpoint,
    change: &IntegrationChange,
) -> sigsci::Result<Applied> {
    let key = location_key(&change.location);
    let api = client.client();
    let result = match (&change.op, &change.location) {
        (Op::Create(settings), location) => {
            let body = IntegrationBody {
                integration_type: settings.kind.as_str().to_string(),
                url: settings.url.expose().to_string(),
                events: settings.events.clone(),
                fields: exposed_fields(settings),
            };
            match location {
                // The reply is the site's whole list: the new one is told apart from the
                // listing this reconcile planned with (cached), not from one more listing.
                Location::Site(site) => {
                    let existing: HashSet<String> =
                        listing(client, integration_cache, &key, || {
                            api.list_site_integrations(site)
                        })
                        .await?
                        .into_iter()
                        .map(|integration| integration.id)
                        .collect();
                    throttle(client, 1).await;
                    api.create_site_integration_among(site, &body, &existing)
                        .await
                }
                Location::Corp => {
                    throttle(client, 1).await;
                    api.create_corp_integration(&body).await
                }
            }
            .map(Written::Object)
        }
        (Op::Update { id, desired, .. }, location) => {
            let body = IntegrationUpdate {
                url: Some(desired.url.expose().to_string()),
                events: Some(desired.events.clone()),
                fields: exposed_fields(desired),
            };
            throttle(client, 1).await;
            match location {
                Location::Site(site) => api.update_site_integration(site, id, &body).await,
                Location::Corp => api.update_corp_integration(id, &body).await,
            }
            .map(|()| Written::Updated(id))
        }
        (Op::Delete { id }, Location::Site(site)) => {
            throttle(client, 1).await;
            ignore_not_found(api.delete_site_integration(site, id).await)
                .map(|()| Written::Deleted(id))
        }
        (Op::Delete { id }, Location::Corp) => {
            throttle(client, 1).await;
            ignore_not_found(api.delete_corp_integration(id).await).map(|()| Written::Deleted(id))
        }
    };
    record(client, integration_cache, &key, result).await
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
