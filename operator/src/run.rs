//! Wiring: one Controller per kind, Secret and connection watches that requeue dependants,
//! and leader election around it all.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self as runtime, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::claims::AllFollowers;
use crate::connect::Accounts;
use crate::controller::{self, Context, Settings, agent_alert, connection, integration, list};
use crate::crd::{AgentAlert, ClusterSigSciConnection, Integration, SigSciConnection, SigSciList};
use crate::index::{self, ConnectionKey, UsesConnection};
use crate::lease::{Clock, LeaderElector, LeaseConfig};
use crate::metrics::Metrics;
use crate::reads::Reads;

/// Reporting controller name on Events.
pub const CONTROLLER_NAME: &str = "sigsci-operator";

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub settings: Settings,
    /// Watch namespaced kinds and Secrets in this namespace only (default: all namespaces).
    pub namespace: Option<String>,
    /// Reconciles in flight per kind.
    pub concurrency: u16,
    /// Leader election; `None` runs unconditionally (a single replica, or tests).
    pub lease: Option<LeaseConfig>,
    /// This process, on Events and in the Lease.
    pub identity: String,
    /// After a shutdown request, how long in-flight reconciles may take before they are
    /// abandoned (keep it under the pod's termination grace period, so the Lease is handed back).
    pub shutdown_grace: Duration,
}

/// The wrapped Kubernetes error is in the message, so it is not also a `source()` (printed twice).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("lost the leader lease; stopping so a restart can compete again")]
    LeadershipLost,
    #[error(
        "the {kind} CRD is not installed (kubectl apply -f charts/sigsci-operator/crds/): {cause}"
    )]
    CrdMissing {
        kind: &'static str,
        cause: kube::Error,
    },
    #[error("Kubernetes API: {0}")]
    Kube(kube::Error),
}

impl From<kube::Error> for RunError {
    fn from(error: kube::Error) -> RunError {
        RunError::Kube(error)
    }
}

/// Run until `shutdown` is cancelled (or leadership is lost).
pub async fn run(
    client: kube::Client,
    options: RunOptions,
    metrics: Arc<Metrics>,
    clock: Clock,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let (reads, followers) = Reads::new();
    run_with_reads(
        client,
        options,
        metrics,
        clock,
        shutdown,
        (Arc::new(reads), followers),
    )
    .await
}

/// [`run`] with the caller's [`Reads`], so it can see what the watches delivered.
pub async fn run_with_reads(
    client: kube::Client,
    options: RunOptions,
    metrics: Arc<Metrics>,
    clock: Clock,
    shutdown: CancellationToken,
    (reads, followers): (Arc<Reads>, AllFollowers),
) -> Result<(), RunError> {
    preflight(&client, options.namespace.as_deref()).await?;
    // Ready before the Lease: a standby that waited for it would never become ready, and a
    // rolling update (new pod ready before the old one stops) would wait for it forever.
    metrics.set_ready(true);
    let reporter = Reporter {
        controller: CONTROLLER_NAME.to_string(),
        instance: Some(options.identity.clone()),
    };
    let mut settings = options.settings.clone();
    // The API accounts' rate limiters and listings keep this run's time.
    settings.api.accounts = Accounts::new(clock.clone());
    let ctx = Arc::new(Context::new(
        client.clone(),
        reporter,
        metrics,
        settings,
        clock.clone(),
        reads,
    ));
    let grace = options.shutdown_grace;
    let Some(lease) = options.lease.clone() else {
        let controllers = run_controllers(ctx, &options, followers, shutdown.clone());
        until_stopped(controllers, &shutdown, grace).await;
        return Ok(());
    };
    let elector = LeaderElector::new(client, lease, clock);
    tokio::select! {
        () = elector.acquire() => {}
        () = shutdown.cancelled() => return Ok(()),
    }
    let stop = shutdown.child_token();
    let controllers = until_stopped(
        run_controllers(ctx, &options, followers, stop.clone()),
        &stop,
        grace,
    );
    tokio::pin!(controllers);
    tokio::select! {
        () = &mut controllers => {
            if let Err(error) = elector.release().await {
                tracing::warn!(%error, "cannot release the lease; a successor waits for it to expire");
            }
            Ok(())
        }
        () = elector.hold() => {
            stop.cancel();
            controllers.await;
            Err(RunError::LeadershipLost)
        }
    }
}

/// Runs `controllers` to completion, but once `stop` fires gives them only `grace` to finish:
/// a reconcile stuck on an unreachable API must not keep the process (and its Lease) until
/// the kubelet kills it.
async fn until_stopped(
    controllers: impl Future<Output = ()>,
    stop: &CancellationToken,
    grace: Duration,
) {
    tokio::pin!(controllers);
    tokio::select! {
        () = &mut controllers => return,
        () = stop.cancelled() => {}
    }
    if tokio::time::timeout(grace, controllers).await.is_err() {
        tracing::warn!(
            grace_seconds = grace.as_secs_f64(),
            "controllers did not stop within the shutdown grace period; abandoning in-flight reconciles"
        );
    }
}

/// Fail early, with the fix, when a CRD is missing.
async fn preflight(client: &kube::Client, namespace: Option<&str>) -> Result<(), RunError> {
    let probe = ListParams::default().limit(1);
    let missing = |kind: &'static str| move |cause| RunError::CrdMissing { kind, cause };
    scoped::<SigSciConnection>(client, namespace)
        .list_metadata(&probe)
        .await
        .map_err(missing(connection::KIND))?;
    Api::<ClusterSigSciConnection>::all(client.clone())
        .list_metadata(&probe)
        .await
        .map_err(missing(connection::CLUSTER_KIND))?;
    scoped::<AgentAlert>(client, namespace)
        .list_metadata(&probe)
        .await
        .map_err(missing(agent_alert::KIND))?;
    scoped::<Integration>(client, namespace)
        .list_metadata(&probe)
        .await
        .map_err(missing(integration::KIND))?;
    scoped::<SigSciList>(client, namespace)
        .list_metadata(&probe)
        .await
        .map_err(missing(list::KIND))?;
    Ok(())
}

fn scoped<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// Secrets, metadata only: a change (e.g. a rotated token) requeues dependants, and no Secret
/// data is cached.
fn secret_metadata(
    client: &kube::Client,
    namespace: Option<&str>,
) -> Api<PartialObjectMeta<Secret>> {
    scoped::<PartialObjectMeta<Secret>>(client, namespace)
}

fn secret_key(secret: &PartialObjectMeta<Secret>) -> Option<(String, String)> {
    Some((secret.namespace()?, secret.name_any()))
}

async fn run_controllers(
    ctx: Arc<Context>,
    options: &RunOptions,
    followers: AllFollowers,
    stop: CancellationToken,
) {
    let client = &ctx.client;
    let reads = &ctx.reads;
    let namespace = options.namespace.as_deref();
    let config = runtime::Config::default().concurrency(options.concurrency);
    let watch = watcher::Config::default;

    let connections = Controller::new(scoped::<SigSciConnection>(client, namespace), watch())
        .with_config(config.clone());
    let connection_store = connections.store();
    let cluster_connections =
        Controller::new(Api::<ClusterSigSciConnection>::all(client.clone()), watch())
            .with_config(config.clone());
    let cluster_store = cluster_connections.store();
    let claims = followers.run(client.clone(), stop.clone());
    let alerts = Controller::new(scoped::<AgentAlert>(client, namespace), watch())
        .with_config(config.clone());
    let lists = Controller::new(scoped::<SigSciList>(client, namespace), watch())
        .with_config(config.clone());
    let integrations =
        Controller::new(scoped::<Integration>(client, namespace), watch()).with_config(config);
    let integration_store = integrations.store();

    // Which connections a Secret feeds, from the connection caches.
    let users_of_secret = {
        let (connection_store, cluster_store) = (connection_store.clone(), cluster_store.clone());
        move |secret: &PartialObjectMeta<Secret>| -> Vec<ConnectionKey> {
            secret_key(secret)
                .map(|(namespace, name)| {
                    index::connections_using_secret(
                        &connection_store.state(),
                        &cluster_store.state(),
                        &namespace,
                        &name,
                    )
                })
                .unwrap_or_default()
        }
    };

    let connections = connections
        .watches(secret_metadata(client, namespace), watch(), {
            let (users_of_secret, reads) = (users_of_secret.clone(), reads.clone());
            move |secret| {
                reads.saw::<Secret>(connection::KIND, &secret.metadata);
                users_of_secret(&secret)
                    .into_iter()
                    .filter_map(|key| {
                        Some(
                            ObjectRef::<SigSciConnection>::new(&key.name)
                                .within(key.namespace.as_deref()?),
                        )
                    })
                    .collect::<Vec<_>>()
            }
        })
        .graceful_shutdown_on(stop.clone().cancelled_owned())
        .run(
            connection::reconcile,
            controller::error_policy(connection::KIND),
            ctx.clone(),
        )
        .for_each(log_result);

    let cluster_connections = cluster_connections
        .watches(secret_metadata(client, namespace), watch(), {
            let (users_of_secret, reads) = (users_of_secret.clone(), reads.clone());
            move |secret| {
                reads.saw::<Secret>(connection::CLUSTER_KIND, &secret.metadata);
                users_of_secret(&secret)
                    .into_iter()
                    .filter(|key| key.namespace.is_none())
                    .map(|key| ObjectRef::<ClusterSigSciConnection>::new(&key.name))
                    .collect::<Vec<_>>()
            }
        })
        .graceful_shutdown_on(stop.clone().cancelled_owned())
        .run(
            connection::reconcile_cluster,
            controller::error_policy(connection::CLUSTER_KIND),
            ctx.clone(),
        )
        .for_each(log_result);

    let alerts = follow_connections(
        alerts,
        (&ctx, agent_alert::KIND),
        namespace,
        users_of_secret.clone(),
    )
    .graceful_shutdown_on(stop.clone().cancelled_owned())
    .run(
        in_resync_slots(skipping_echoes(agent_alert::reconcile)),
        controller::error_policy(agent_alert::KIND),
        ctx.clone(),
    )
    .for_each(log_result);

    let lists = follow_connections(
        lists,
        (&ctx, list::KIND),
        namespace,
        users_of_secret.clone(),
    )
    .graceful_shutdown_on(stop.clone().cancelled_owned())
    .run(
        in_resync_slots(list::reconcile),
        controller::error_policy(list::KIND),
        ctx.clone(),
    )
    .for_each(log_result);

    let kind = integration::KIND;
    let integrations = integrations
        .watches(secret_metadata(client, namespace), watch(), {
            let (integration_store, users_of_secret) = (integration_store.clone(), users_of_secret);
            let ctx = ctx.clone();
            move |secret| {
                ctx.reads.saw::<Secret>(kind, &secret.metadata);
                let key = secret_key(&secret);
                let direct = key
                    .as_ref()
                    .map(|(namespace, name)| (namespace.as_str(), name.as_str()));
                ctx.echoes.triggered(index::integrations_using(
                    &integration_store.state(),
                    &users_of_secret(&secret),
                    direct,
                ))
            }
        })
        .watches(scoped::<SigSciConnection>(client, namespace), watch(), {
            let (integration_store, ctx) = (integration_store.clone(), ctx.clone());
            move |connection| {
                ctx.reads
                    .saw::<SigSciConnection>(kind, &connection.metadata);
                ctx.echoes.triggered(index::integrations_using(
                    &integration_store.state(),
                    &[namespaced_key(&connection)],
                    None,
                ))
            }
        })
        .watches(
            Api::<ClusterSigSciConnection>::all(client.clone()),
            watch(),
            {
                let (integration_store, ctx) = (integration_store.clone(), ctx.clone());
                move |connection| {
                    ctx.reads
                        .saw::<ClusterSigSciConnection>(kind, &connection.metadata);
                    ctx.echoes.triggered(index::integrations_using(
                        &integration_store.state(),
                        &[ConnectionKey::cluster(&connection.name_any())],
                        None,
                    ))
                }
            },
        )
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(
            in_resync_slots(skipping_echoes(integration::reconcile)),
            controller::error_policy(integration::KIND),
            ctx.clone(),
        )
        .for_each(log_result);

    tracing::info!(
        namespace = namespace.unwrap_or("(all)"),
        "controllers started"
    );
    futures::join!(
        claims,
        connections,
        cluster_connections,
        alerts,
        lists,
        integrations
    );
    tracing::info!("controllers stopped");
}

/// Requeue the objects of a kind that reaches the API only through its connection when that
/// connection, or the Secret behind it, changes. The watches also vouch for the reads of
/// `kind`'s reconciles (see [`crate::reads`]) and make the requeued objects reconcile in full.
fn follow_connections<K>(
    controller: Controller<K>,
    (ctx, kind): (&Arc<Context>, &'static str),
    namespace: Option<&str>,
    users_of_secret: impl Fn(&PartialObjectMeta<Secret>) -> Vec<ConnectionKey> + Send + Sync + 'static,
) -> Controller<K>
where
    K: UsesConnection
        + Resource<Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let store = controller.store();
    let client = &ctx.client;
    let watch = watcher::Config::default;
    controller
        .watches(secret_metadata(client, namespace), watch(), {
            let (store, ctx) = (store.clone(), ctx.clone());
            move |secret| {
                ctx.reads.saw::<Secret>(kind, &secret.metadata);
                ctx.echoes.triggered(index::using_connections(
                    &store.state(),
                    &users_of_secret(&secret),
                ))
            }
        })
        .watches(scoped::<SigSciConnection>(client, namespace), watch(), {
            let (store, ctx) = (store.clone(), ctx.clone());
            move |connection| {
                ctx.reads
                    .saw::<SigSciConnection>(kind, &connection.metadata);
                ctx.echoes.triggered(index::using_connections(
                    &store.state(),
                    &[namespaced_key(&connection)],
                ))
            }
        })
        .watches(
            Api::<ClusterSigSciConnection>::all(client.clone()),
            watch(),
            {
                let ctx = ctx.clone();
                move |connection| {
                    ctx.reads
                        .saw::<ClusterSigSciConnection>(kind, &connection.metadata);
                    ctx.echoes.triggered(index::using_connections(
                        &store.state(),
                        &[ConnectionKey::cluster(&connection.name_any())],
                    ))
                }
            },
        )
}

/// Skip the reconciles that only echo the last one's own writes (see [`crate::echo`]).
fn skipping_echoes<K, Fut>(
    reconcile: impl Fn(Arc<K>, Arc<Context>) -> Fut,
) -> impl Fn(Arc<K>, Arc<Context>) -> BoxFuture<'static, crate::Result<runtime::Action>>
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
    Fut: Future<Output = crate::Result<runtime::Action>> + Send + 'static,
{
    move |object, ctx| {
        let key = controller::object_key(object.as_ref());
        let meta = object.meta();
        if ctx
            .echoes
            .start(&key, meta.resource_version.as_deref(), meta.generation)
        {
            tracing::trace!(object = %key, "skipped the echo of our own writes");
            let action = runtime::Action::requeue(ctx.settings.resync);
            return Box::pin(std::future::ready(Ok(action)));
        }
        let deleting = object.meta().deletion_timestamp.is_some();
        let reconciled = reconcile(object, ctx.clone());
        Box::pin(async move {
            let result = reconciled.await;
            match (&result, deleting) {
                (Err(_), _) => ctx.echoes.failed(&key),
                // The finalizer is gone, and the object with it.
                (Ok(_), true) => ctx.forget(&key),
                (Ok(_), false) => {}
            }
            result
        })
    }
}

/// Periodic resyncs in slots: every object of one connection and site comes due at the same
/// moment of the resync period, so one listing (shared for a few seconds, see
/// [`crate::cache`]) serves them all, and the sites' slots spread the calls over the period.
/// Other requeues (errors, a list entry's expiry) are left as the reconciler asked.
fn in_resync_slots<K, Fut>(
    reconcile: impl Fn(Arc<K>, Arc<Context>) -> Fut,
) -> impl Fn(Arc<K>, Arc<Context>) -> BoxFuture<'static, crate::Result<runtime::Action>>
where
    K: Resource + Serialize + Send + Sync + 'static,
    Fut: Future<Output = crate::Result<runtime::Action>> + Send + 'static,
{
    move |object, ctx| {
        let slot = index::resync_slot(object.as_ref());
        let reconciled = reconcile(object, ctx.clone());
        Box::pin(async move {
            let action = reconciled.await?;
            let resync = ctx.settings.resync;
            if action != runtime::Action::requeue(resync) {
                return Ok(action);
            }
            let now = (ctx.clock)().as_millisecond();
            Ok(runtime::Action::requeue(index::until_slot(
                slot, now, resync,
            )))
        })
    }
}

fn namespaced_key(connection: &SigSciConnection) -> ConnectionKey {
    ConnectionKey::namespaced(
        &connection.namespace().unwrap_or_default(),
        &connection.name_any(),
    )
}

async fn log_result<K, E1, E2>(
    result: Result<(ObjectRef<K>, runtime::Action), runtime::Error<E1, E2>>,
) where
    K: Resource + DeserializeOwned,
    K::DynamicType: std::fmt::Debug,
    E1: std::error::Error,
    E2: std::error::Error,
{
    match result {
        Ok((object, _)) => tracing::debug!(%object, "reconciled"),
        // Reconcile errors are logged by the error policy; these are watch and queue errors.
        Err(runtime::Error::ReconcilerFailed(_, _)) => {}
        Err(error) => tracing::warn!(%error, "controller error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stuck_controllers_are_abandoned_after_the_grace_period() {
        let stop = CancellationToken::new();
        stop.cancel();
        let started = tokio::time::Instant::now();
        until_stopped(std::future::pending(), &stop, Duration::from_secs(10)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn controllers_that_stop_in_time_are_awaited() {
        let stop = CancellationToken::new();
        stop.cancel();
        let started = tokio::time::Instant::now();
        let controllers = tokio::time::sleep(Duration::from_secs(3));
        until_stopped(controllers, &stop, Duration::from_secs(10)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_stop_no_grace_period_applies() {
        let stop = CancellationToken::new();
        let started = tokio::time::Instant::now();
        let controllers = tokio::time::sleep(Duration::from_secs(600));
        until_stopped(controllers, &stop, Duration::from_secs(10)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(600));
    }
}
