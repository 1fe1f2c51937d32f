//! Test bed: the simulator in-process, moto for S3 state and Secrets Manager, local HTTP receivers
//! standing in for Slack, PagerDuty, Opsgenie and a webhook, and the acknowledgement endpoint.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_health::{
    AckService, ConsoleSink, Deliverer, Evaluator, IncidentSync, ManualClock, Rules, RunReport,
    SecretResolver, SigningKey, State, StateStore, router,
};
use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use chrono::{TimeDelta, Utc};
use kit_storage::{
    ObjectMeta, ObjectStore, PutCondition, PutOutcome, S3Location, S3Store, SecretsManager,
    StoredObject, Upload,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use sigsci::{CredentialSecret, Credentials, RetryPolicy};
use sigsci_sim::{RunningSim, SimConfig};

pub const CORP: &str = "testcorp";
pub const ACK_KEY: &str = "ack-signing-key-for-tests";
pub const WEBHOOK_KEY: &str = "webhook-signing-key-for-tests";
pub const ROUTING_KEY: &str = "pd-routing-key-for-tests";

pub use kit_storage::testing::{
    create_bucket, create_secret, moto_url, rotate_secret, s3_client, set_test_aws_env, unique,
};

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("receiver got JSON")
    }
}

/// A local HTTP endpoint that records every request and answers `ok_status`, or `fail_status` when told to fail.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    failing: Arc<AtomicU16>,
}

impl Receiver {
    pub async fn start(ok_status: u16) -> Receiver {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let failing = Arc::new(AtomicU16::new(0));
        let (log, fail) = (Arc::clone(&requests), Arc::clone(&failing));
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (log, fail) = (Arc::clone(&log), Arc::clone(&fail));
                async move {
                    log.lock().unwrap().push(Recorded {
                        method,
                        path: uri.path().to_string(),
                        query: uri.query().map(str::to_string),
                        headers,
                        body,
                    });
                    match fail.load(Ordering::SeqCst) {
                        0 => (
                            StatusCode::from_u16(ok_status).unwrap(),
                            "{\"status\":\"success\"}",
                        ),
                        status => (
                            StatusCode::from_u16(status).unwrap(),
                            "{\"message\":\"receiver told to fail\"}",
                        ),
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            url,
            requests,
            failing,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    pub fn fail_with(&self, status: u16) {
        self.failing.store(status, Ordering::SeqCst);
    }

    pub fn recover(&self) {
        self.failing.store(0, Ordering::SeqCst);
    }
}

/// An `ObjectStore` wrapper that holds the first `hold` reads at a barrier, so that overlapping runs
/// really read the same version before either writes, and counts refused conditional writes.
pub struct RacingStore {
    inner: Arc<dyn ObjectStore>,
    barrier: tokio::sync::Barrier,
    held: AtomicUsize,
    hold: usize,
    pub precondition_failures: AtomicUsize,
}

impl RacingStore {
    pub fn new(inner: Arc<dyn ObjectStore>, hold: usize) -> RacingStore {
        RacingStore {
            inner,
            barrier: tokio::sync::Barrier::new(hold),
            held: AtomicUsize::new(0),
            hold,
            precondition_failures: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl ObjectStore for RacingStore {
    async fn get(&self, key: &str) -> kit_storage::Result<Option<StoredObject>> {
        let object = self.inner.get(key).await;
        if self.held.fetch_add(1, Ordering::SeqCst) < self.hold {
            self.barrier.wait().await;
        }
        object
    }

    async fn put(
        &self,
        key: &str,
        body: bytes::Bytes,
        condition: PutCondition,
    ) -> kit_storage::Result<PutOutcome> {
        let outcome = self.inner.put(key, body, condition).await?;
        if outcome == PutOutcome::PreconditionFailed {
            self.precondition_failures.fetch_add(1, Ordering::SeqCst);
        }
        Ok(outcome)
    }

    async fn delete(&self, key: &str) -> kit_storage::Result<()> {
        self.inner.delete(key).await
    }

    async fn list(&self, prefix: &str) -> kit_storage::Result<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }

    async fn upload(&self, key: &str) -> kit_storage::Result<Box<dyn Upload>> {
        self.inner.upload(key).await
    }

    fn location(&self) -> String {
        self.inner.location()
    }
}

pub struct Harness {
    pub sim: RunningSim,
    pub slack: Receiver,
    pub pagerduty: Receiver,
    pub opsgenie: Receiver,
    pub webhook: Receiver,
    pub clock: ManualClock,
    pub rules: Rules,
    pub s3: Arc<dyn ObjectStore>,
    pub store: StateStore,
    pub evaluator: Evaluator,
    pub ack_url: String,
    pub http: reqwest::Client,
    pub secrets_prefix: String,
    runs: AtomicUsize,
}

impl Harness {
    /// Three sites, four channels (the webhook refuses acknowledgements), state on moto S3.
    pub async fn start(extra_rules: &str) -> Harness {
        set_test_aws_env();
        let sim = sigsci_sim::start(
            SimConfig::default(),
            "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        )
        .await
        .unwrap();
        let (slack, pagerduty, opsgenie, webhook) = (
            Receiver::start(200).await,
            Receiver::start(202).await,
            Receiver::start(202).await,
            Receiver::start(200).await,
        );
        let secrets_prefix = unique("ah");
        create_secret(
            &format!("{secrets_prefix}/slack"),
            &json!({"webhook_url": format!("{}/services/T000/B000/XXXX", slack.url)}).to_string(),
        )
        .await;
        create_secret(
            &format!("{secrets_prefix}/pagerduty"),
            &json!({"routing_key": ROUTING_KEY}).to_string(),
        )
        .await;
        create_secret(
            &format!("{secrets_prefix}/opsgenie"),
            &json!({"api_key": "genie-key"}).to_string(),
        )
        .await;
        create_secret(
            &format!("{secrets_prefix}/webhook"),
            &json!({"signing_key": WEBHOOK_KEY}).to_string(),
        )
        .await;
        create_secret(
            &format!("{secrets_prefix}/ack"),
            &json!({"key": ACK_KEY}).to_string(),
        )
        .await;

        let ack_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ack_url = format!("http://{}", ack_listener.local_addr().unwrap());
        let rules_text = format!(
            "evaluation: {{concurrency: 4}}\n\
             ack: {{base_url: '{ack_url}', secret: 'secretsmanager:{p}/ack', link_ttl: 2h}}\n\
             channels:\n\
             \x20 - {{name: slack, type: slack, secret: 'secretsmanager:{p}/slack', throttle_period: 30m}}\n\
             \x20 - {{name: pagerduty, type: pagerduty, secret: 'secretsmanager:{p}/pagerduty', base_url: '{pd}', throttle_period: 30m}}\n\
             \x20 - {{name: opsgenie, type: opsgenie, secret: 'secretsmanager:{p}/opsgenie', base_url: '{og}', throttle_period: 30m}}\n\
             \x20 - {{name: hook, type: webhook, secret: 'secretsmanager:{p}/webhook', url: '{hook}/hook', throttle_period: 30m, ack_enabled: false}}\n\
             {extra_rules}",
            p = secrets_prefix,
            pd = pagerduty.url,
            og = opsgenie.url,
            hook = webhook.url,
        );
        let rules = Rules::parse(&rules_text, "harness rules").unwrap_or_else(|e| panic!("{e}"));

        let bucket = create_bucket("agent-health").await;
        let s3: Arc<dyn ObjectStore> = Arc::new(
            S3Store::new(
                S3Location::parse(&format!("s3://{bucket}/state")).unwrap(),
                Some(&moto_url()),
            )
            .unwrap(),
        );
        let store = StateStore::for_corp(Arc::clone(&s3), CORP);
        let clock = ManualClock::new(Utc::now());
        let secrets = SecretResolver::new(Some(Arc::new(SecretsManager::new(Some(&moto_url())))));
        let console: ConsoleSink = Arc::new(|_: &str| {});
        let evaluator = Evaluator {
            client: client(&sim.base_url),
            store: store.clone(),
            secrets,
            deliverer: Deliverer::new(console).unwrap(),
            clock: Arc::new(clock.clone()),
        };
        let service = AckService {
            corp: CORP.into(),
            store: store.clone(),
            rules: Arc::new(rules.clone()),
            key: SigningKey::fixed(SecretString::from(ACK_KEY)),
            clock: Arc::new(clock.clone()),
            incidents: IncidentSync {
                secrets: evaluator.secrets.clone(),
                deliverer: evaluator.deliverer.clone(),
            },
        };
        tokio::spawn(async move { axum::serve(ack_listener, router(service)).await.unwrap() });
        Harness {
            sim,
            slack,
            pagerduty,
            opsgenie,
            webhook,
            clock,
            rules,
            s3,
            store,
            evaluator,
            ack_url,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            secrets_prefix,
            runs: AtomicUsize::new(0),
        }
    }

    /// `PUT /__sim/sites/{site}/agents`.
    pub async fn set_agents(&self, site: &str, fleet: Value) {
        let response = self
            .http
            .put(format!("{}/__sim/sites/{site}/agents", self.sim.base_url))
            .json(&fleet)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "fleet update refused: {}",
            response.text().await.unwrap()
        );
    }

    /// `PUT /__sim/faults` (replaces the whole fault set).
    pub async fn set_faults(&self, faults: Value) {
        let response = self
            .http
            .put(format!("{}/__sim/faults", self.sim.base_url))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    /// Submits the acknowledgement form (link parameters plus the form's fields), as a browser would.
    pub async fn post_ack(&self, form: &HashMap<String, String>) -> reqwest::Response {
        self.http
            .post(format!("{}/ack", self.ack_url))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn run(&self) -> RunReport {
        let run_id = format!("run{}", self.runs.fetch_add(1, Ordering::SeqCst));
        self.evaluator
            .run(&self.rules, &run_id)
            .await
            .unwrap_or_else(|e| panic!("run {run_id}: {e}"))
    }

    pub fn advance_minutes(&self, minutes: i64) {
        self.clock.advance(TimeDelta::minutes(minutes));
    }

    pub async fn state(&self) -> State {
        self.store.load(CORP).await.unwrap().0
    }

    /// The stored document's raw bytes (to prove a refused request changed nothing).
    pub async fn raw_state(&self) -> Option<bytes::Bytes> {
        self.s3
            .get(&format!("agent-health/{CORP}.json"))
            .await
            .unwrap()
            .map(|o| o.body)
    }

    pub fn slack_messages(&self) -> Vec<Value> {
        self.slack.requests().iter().map(Recorded::json).collect()
    }

    pub fn pagerduty_events(&self) -> Vec<Value> {
        self.pagerduty
            .requests()
            .iter()
            .map(Recorded::json)
            .collect()
    }

    pub fn all_counts(&self) -> [usize; 4] {
        [
            self.slack.count(),
            self.pagerduty.count(),
            self.opsgenie.count(),
            self.webhook.count(),
        ]
    }
}

pub fn client(base_url: &str) -> sigsci::Client {
    let credentials = Credentials {
        email: "sim@example.com".into(),
        secret: CredentialSecret::Token(SecretString::from("sim-token")),
    };
    sigsci::Client::builder(base_url, CORP, credentials)
        .retry(RetryPolicy {
            max_attempts: 2,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(1),
        })
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// The Acknowledge button URLs of a Slack message, in order.
pub fn ack_buttons(message: &Value) -> Vec<String> {
    message["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|block| block["accessory"]["url"].as_str().map(str::to_string))
        .collect()
}

pub fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}
