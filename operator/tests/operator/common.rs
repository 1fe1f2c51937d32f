//! Shared by the cluster suites: the real kube-apiserver from `tests/run.sh`, the Helm chart
//! installed for real (CRDs and RBAC), an in-process operator that acts as the chart's
//! ServiceAccount (impersonation, so only the chart's ClusterRole authorizes it), and the
//! simulator in-process.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sigsci_config::{AlertDeletionPolicy, ManagementPolicy, Metric, ThresholdOperator};
use sigsci_operator::controller::Settings;
use sigsci_operator::crd::{
    AgentAlert, AgentAlertSpec, ConnectionKind, ConnectionRef, CredentialsSecretRef, Integration,
    SigSciConnection, SigSciConnectionSpec, SigSciList,
};
use sigsci_operator::lease::{LeaseConfig, system_clock};
use sigsci_operator::metrics::Metrics;
use sigsci_operator::reads::Reads;
use sigsci_operator::run::{RunError, RunOptions, run_with_reads};
use sigsci_sim::{RunningSim, SimConfig};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Where the chart is installed; its ServiceAccount is the operator's identity in tests.
pub const RELEASE_NAMESPACE: &str = "sigsci-system";
pub const OPERATOR_USER: &str = "system:serviceaccount:sigsci-system:sigsci-operator";
pub const TIMEOUT: Duration = Duration::from_secs(30);

pub fn kubeconfig_path() -> PathBuf {
    match std::env::var_os("SIGSCI_KIT_TEST_KUBECONFIG") {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "SIGSCI_KIT_TEST_KUBECONFIG is not set: these tests need the real kube-apiserver; \
             `tests/services.sh up DIR k8s`, then `source DIR/env` (tests/run.sh does both)"
        ),
    }
}

async fn config() -> kube::Config {
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable")
}

/// The test bed's admin (system:masters): for setting up and inspecting.
pub async fn admin() -> Client {
    Client::try_from(config().await).expect("admin client")
}

/// The operator's identity: the chart's ServiceAccount, so every call is authorized (or not)
/// by the chart's RBAC alone.
pub async fn operator_client() -> Client {
    let mut config = config().await;
    config.auth_info.impersonate = Some(OPERATOR_USER.to_string());
    Client::try_from(config).expect("operator client")
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

static CHART: OnceCell<()> = OnceCell::const_new();

/// `helm upgrade --install` the chart once per test binary (operator scaled to 0: the tests
/// run it in-process), then make sure the CRDs are the current ones and established.
pub async fn install_chart() {
    CHART
        .get_or_init(|| async {
            let kubeconfig = kubeconfig_path();
            let helm = std::env::var("SIGSCI_KIT_TEST_HELM")
                .unwrap_or_else(|_| panic!("SIGSCI_KIT_TEST_HELM is not set: `tests/services.sh up DIR k8s`, then `source DIR/env` (tests/run.sh does both)"));
            let chart = repo_root().join("charts/sigsci-operator");
            let output = tokio::task::spawn_blocking(move || {
                std::process::Command::new(helm)
                    .args(["upgrade", "--install", "sigsci-operator"])
                    .arg(chart)
                    .args(["--namespace", RELEASE_NAMESPACE, "--create-namespace", "--set", "replicaCount=0"])
                    .arg("--kubeconfig")
                    .arg(kubeconfig)
                    .output()
            })
            .await
            .expect("helm task")
            .expect("helm runs");
            assert!(
                output.status.success(),
                "helm install failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            // Helm installs crds/ only on first install; a long-lived test bed gets updates here.
            let crds: Api<CustomResourceDefinition> = Api::all(admin().await);
            for crd in sigsci_operator::crd::all() {
                let name = crd.name_any();
                crds.patch(&name, &PatchParams::apply("sigsci-kit-tests").force(), &Patch::Apply(&crd))
                    .await
                    .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
                wait_until(&crds, &name, "established", |crd| {
                    crd.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Established" && c.status == "True"))
                })
                .await;
            }
        })
        .await;
}

/// A fresh namespace for one test.
pub async fn namespace(admin: &Client, prefix: &str) -> String {
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let created = namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    generate_name: Some(format!("{prefix}-")),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .expect("create namespace");
    created.name_any()
}

pub async fn start_sim() -> RunningSim {
    sigsci_sim::start(
        SimConfig::default(),
        "127.0.0.1:0".parse().expect("address"),
    )
    .await
    .expect("simulator starts")
}

/// A client that checks the simulator's state (the "truth").
pub fn sim_client(sim: &RunningSim, token: &str) -> sigsci::Client {
    let config = sim.state.config();
    sigsci::Client::builder(
        &sim.base_url,
        &config.corp,
        sigsci::Credentials::token(&config.email, token),
    )
    .build()
    .expect("sim client")
}

pub async fn put_secret(admin: &Client, namespace: &str, name: &str, data: &[(&str, &str)]) {
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), namespace);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        string_data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Secret::default()
    };
    secrets
        .patch(
            name,
            &PatchParams::apply("sigsci-kit-tests").force(),
            &Patch::Apply(&secret),
        )
        .await
        .expect("apply secret");
}

/// A Secret with the simulator's user and `token`, and a SigSciConnection `sim` using it.
pub async fn connect_to_sim(admin: &Client, namespace: &str, sim: &RunningSim, token: &str) {
    let email = sim.state.config().email.clone();
    put_secret(
        admin,
        namespace,
        "sim-credentials",
        &[("email", &email), ("token", token)],
    )
    .await;
    let connection = SigSciConnection::new(
        "sim",
        SigSciConnectionSpec {
            corp: sim.state.config().corp.clone(),
            api_url: sim.base_url.clone(),
            credentials_secret_ref: CredentialsSecretRef {
                name: "sim-credentials".into(),
                namespace: None,
                email_key: "email".into(),
                token_key: "token".into(),
            },
        },
    );
    apply(admin, namespace, &connection).await;
}

pub fn sim_connection() -> ConnectionRef {
    ConnectionRef {
        kind: ConnectionKind::SigSciConnection,
        name: "sim".into(),
    }
}

/// Server-side apply of a whole object as the test's "user".
pub async fn apply<K>(client: &Client, namespace: &str, object: &K) -> K
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(
        &object.name_any(),
        &PatchParams::apply("sigsci-kit-tests").force(),
        &Patch::Apply(object),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {}: {e}", object.name_any()))
}

/// Settings fast enough for tests: drift is re-checked every 2 s, transient errors retry
/// within a second, permanent ones only after 10 minutes (so a retry storm would show).
pub fn test_settings() -> Settings {
    Settings {
        resync: Duration::from_secs(2),
        permanent_retry: Duration::from_secs(600),
        backoff_min: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        ..Settings::default()
    }
}

pub struct RunningOperator {
    pub metrics: Arc<Metrics>,
    /// What its watches delivered.
    pub reads: Arc<Reads>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), RunError>>,
}

impl RunningOperator {
    pub async fn stop(self) -> Result<(), RunError> {
        self.shutdown.cancel();
        self.task.await.expect("operator task")
    }
}

/// The operator, in-process, as the chart's ServiceAccount, watching `namespace` only.
pub async fn start_operator(
    namespace: &str,
    lease: Option<LeaseConfig>,
    identity: &str,
) -> RunningOperator {
    start_operator_with(namespace, lease, identity, test_settings()).await
}

/// [`start_operator`] with other timing settings.
pub async fn start_operator_with(
    namespace: &str,
    lease: Option<LeaseConfig>,
    identity: &str,
    settings: Settings,
) -> RunningOperator {
    let metrics = Arc::new(Metrics::default());
    let shutdown = CancellationToken::new();
    let options = RunOptions {
        settings,
        namespace: Some(namespace.to_string()),
        concurrency: 4,
        lease,
        identity: identity.to_string(),
        shutdown_grace: Duration::from_secs(10),
    };
    let (reads, followers) = Reads::new();
    let reads = Arc::new(reads);
    let task = tokio::spawn(run_with_reads(
        operator_client().await,
        options,
        metrics.clone(),
        system_clock(),
        shutdown.clone(),
        (reads.clone(), followers),
    ));
    RunningOperator {
        metrics,
        reads,
        shutdown,
        task,
    }
}

/// Poll `name` until `ready` holds; on timeout, fail showing the object.
pub async fn wait_until<K>(api: &Api<K>, name: &str, what: &str, ready: impl Fn(&K) -> bool) -> K
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let mut last = None;
    loop {
        match api.get_opt(name).await {
            Ok(Some(object)) if ready(&object) => return object,
            Ok(object) => last = object,
            Err(error) => eprintln!("waiting for {name} ({what}): {error}"),
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {name} to be {what}; last seen: {last:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn wait_gone<K>(api: &Api<K>, name: &str)
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match api.get_opt(name).await {
            Ok(None) => return,
            Ok(Some(object)) if tokio::time::Instant::now() > deadline => {
                panic!("timed out waiting for {name} to be deleted; last seen: {object:#?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Wait until the operator's metrics hold `line`: gauges are set after the status write a test
/// waits for, so a single read can race them.
pub async fn wait_for_metric(operator: &RunningOperator, line: &str) {
    eventually(line, || async {
        let metrics = operator.metrics.encode().ok()?;
        metrics.contains(line).then_some(())
    })
    .await;
}

/// Poll an async check until it returns `Some`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

pub fn is_condition(conditions: &[Condition], type_: &str, status: &str) -> bool {
    condition(conditions, type_).is_some_and(|c| c.status == status)
}

pub fn alert_ready(alert: &AgentAlert, generation_done: bool) -> bool {
    alert.status.as_ref().is_some_and(|s| {
        is_condition(&s.sync.conditions, "Ready", "True")
            && (!generation_done || s.sync.observed_generation == alert.metadata.generation)
    })
}

pub fn integration_ready(integration: &Integration) -> bool {
    integration.status.as_ref().is_some_and(|s| {
        is_condition(&s.sync.conditions, "Ready", "True")
            && s.sync.observed_generation == integration.metadata.generation
    })
}

/// Delete every test object (the operator must still run, to release the finalizers), then
/// the namespace.
pub async fn cleanup(admin: &Client, namespace: &str) {
    let alerts: Api<AgentAlert> = Api::namespaced(admin.clone(), namespace);
    let integrations: Api<Integration> = Api::namespaced(admin.clone(), namespace);
    let lists: Api<SigSciList> = Api::namespaced(admin.clone(), namespace);
    for list in lists
        .list(&ListParams::default())
        .await
        .expect("list lists")
    {
        let _ = lists
            .delete(&list.name_any(), &DeleteParams::default())
            .await;
        wait_gone(&lists, &list.name_any()).await;
    }
    for alert in alerts
        .list(&ListParams::default())
        .await
        .expect("list alerts")
    {
        let _ = alerts
            .delete(&alert.name_any(), &DeleteParams::default())
            .await;
        wait_gone(&alerts, &alert.name_any()).await;
    }
    for integration in integrations
        .list(&ListParams::default())
        .await
        .expect("list integrations")
    {
        let _ = integrations
            .delete(&integration.name_any(), &DeleteParams::default())
            .await;
        wait_gone(&integrations, &integration.name_any()).await;
    }
    // Without a namespace controller in the test bed the namespace stays Terminating; harmless.
    let _ = Api::<Namespace>::all(admin.clone())
        .delete(namespace, &DeleteParams::default())
        .await;
}

/// The chart, a fresh namespace, the simulator and a connection to it with `token`.
pub async fn connected_namespace(prefix: &str, token: &str) -> (Client, String, RunningSim) {
    install_chart().await;
    let admin = admin().await;
    let namespace = namespace(&admin, prefix).await;
    let sim = start_sim().await;
    connect_to_sim(&admin, &namespace, &sim, token).await;
    (admin, namespace, sim)
}

/// API calls that write (anything but GET).
pub fn api_writes(sim: &RunningSim) -> u64 {
    sim.state
        .call_log()
        .calls
        .iter()
        .filter(|(call, _)| !call.starts_with("GET "))
        .map(|(_, count)| count)
        .sum()
}

/// `(reason, note)` of the Events about object `name`.
pub async fn events_about(admin: &Client, namespace: &str, name: &str) -> Vec<(String, String)> {
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(admin.clone(), namespace);
    events
        .list(&ListParams::default())
        .await
        .expect("list events")
        .into_iter()
        .filter(|event| event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|event| {
            (
                event.reason.unwrap_or_default(),
                event.note.unwrap_or_default(),
            )
        })
        .collect()
}

/// Wait for an Event about object `name` that `matches` `(reason, note)`: Events are published
/// after the status write a test waits for.
pub async fn wait_for_event(
    admin: &Client,
    namespace: &str,
    name: &str,
    matches: impl Fn(&str, &str) -> bool,
) {
    eventually(&format!("a matching Event about {name}"), || async {
        events_about(admin, namespace, name)
            .await
            .iter()
            .any(|(reason, note)| matches(reason, note))
            .then_some(())
    })
    .await;
}

/// An agent alert on one site through the simulator's connection, managed in full; tests change
/// other fields with `..`.
pub fn alert_spec(
    site: &str,
    metric: Metric,
    threshold: i64,
    policy: AlertDeletionPolicy,
) -> AgentAlertSpec {
    AgentAlertSpec {
        connection_ref: sim_connection(),
        site: Some(site.into()),
        sites: None,
        metric,
        operator: ThresholdOperator::LessThan,
        threshold,
        interval: 10,
        enabled: true,
        skip_notifications: false,
        deletion_policy: policy,
        management_policy: ManagementPolicy::Full,
    }
}
