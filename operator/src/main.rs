//! `sigsci-operator`: reconciles sigsci-kit.io resources against the Signal Sciences API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{ArgAction, Parser};
use sigsci_operator::connect::ApiSettings;
use sigsci_operator::controller::Settings;
use sigsci_operator::lease::{LeaseConfig, system_clock};
use sigsci_operator::limiter::Rate;
use sigsci_operator::metrics::Metrics;
use sigsci_operator::run::{RunOptions, run};
use sigsci_operator::telemetry::{self, LogFormat};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "sigsci-operator",
    version,
    about = "Reconciles sigsci-kit.io resources against the Signal Sciences API"
)]
struct Args {
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(
        long,
        env = "SIGSCI_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    metrics_addr: SocketAddr,
    #[arg(
        long,
        env = "SIGSCI_OPERATOR_LOG_FORMAT",
        value_enum,
        default_value = "json"
    )]
    log_format: LogFormat,
    /// Watch one namespace only (default: all namespaces).
    #[arg(long, env = "SIGSCI_OPERATOR_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Re-read every remote object and re-apply drift this often.
    #[arg(long, env = "SIGSCI_OPERATOR_RESYNC_SECONDS", default_value_t = 300)]
    resync_seconds: u64,
    /// Retry period after errors that need a fix first (credentials, spec, missing Secret).
    #[arg(
        long,
        env = "SIGSCI_OPERATOR_PERMANENT_RETRY_SECONDS",
        default_value_t = 600
    )]
    permanent_retry_seconds: u64,
    /// Signal Sciences API calls per second per API account (URL, corp, user, token), shared by
    /// all controllers.
    #[arg(long, env = "SIGSCI_OPERATOR_API_RATE", default_value_t = Rate::default().per_second, value_parser = positive_rate)]
    api_rate: f64,
    /// API calls an account may make at once after a quiet spell.
    #[arg(long, env = "SIGSCI_OPERATOR_API_BURST", default_value_t = Rate::default().burst, value_parser = clap::value_parser!(u32).range(1..))]
    api_burst: u32,
    /// How long one listing of a site's alerts, integrations or lists serves the other objects
    /// of that site (our own writes update it; others' changes show after this).
    #[arg(long, env = "SIGSCI_OPERATOR_LIST_CACHE_SECONDS", default_value_t = 5)]
    list_cache_seconds: u64,
    /// Reconciles in flight per kind. A new object's reconcile waits on a few apiserver round
    /// trips and one or two API calls; 16 in flight keep `--api-rate`, not waiting, the bound.
    #[arg(long, env = "SIGSCI_OPERATOR_CONCURRENCY", default_value_t = 16)]
    concurrency: u16,
    /// Only the holder of the Lease reconciles.
    #[arg(long, env = "SIGSCI_OPERATOR_LEADER_ELECTION", default_value_t = true, action = ArgAction::Set)]
    leader_election: bool,
    #[arg(long, env = "POD_NAMESPACE", default_value = "sigsci-system")]
    lease_namespace: String,
    #[arg(
        long,
        env = "SIGSCI_OPERATOR_LEASE_NAME",
        default_value = "sigsci-operator"
    )]
    lease_name: String,
    /// After SIGTERM, how long in-flight reconciles may run before the operator hands back its
    /// Lease and exits anyway (keep under the pod's terminationGracePeriodSeconds).
    #[arg(
        long,
        env = "SIGSCI_OPERATOR_SHUTDOWN_GRACE_SECONDS",
        default_value_t = 10
    )]
    shutdown_grace_seconds: u64,
    /// This instance in the Lease and on Events (default: pod or host name and pid).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init(args.log_format);
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let client = kube::Client::try_default()
        .await
        .context("cannot configure the Kubernetes client")?;
    let metrics = Arc::new(Metrics::default());

    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.metrics_addr))?;
    let server = axum::serve(listener, sigsci_operator::http::app(metrics.clone()));
    tokio::spawn(async move {
        if let Err(error) = server.await {
            tracing::error!(%error, "metrics server stopped");
        }
    });

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let options = RunOptions {
        settings: Settings {
            api: ApiSettings {
                rate: Rate {
                    per_second: args.api_rate,
                    burst: args.api_burst,
                },
                list_ttl: Duration::from_secs(args.list_cache_seconds),
                ..ApiSettings::default()
            },
            resync: Duration::from_secs(args.resync_seconds),
            permanent_retry: Duration::from_secs(args.permanent_retry_seconds),
            ..Settings::default()
        },
        namespace: args.watch_namespace,
        concurrency: args.concurrency,
        lease: args.leader_election.then(|| LeaseConfig {
            namespace: args.lease_namespace,
            name: args.lease_name,
            identity: identity.clone(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }),
        identity,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_seconds),
    };
    run(client, options, metrics, system_clock(), shutdown).await?;
    Ok(())
}

fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a positive number of calls per second"
        )),
    }
}

fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "sigsci-operator".to_string());
    format!("{host}-{}", std::process::id())
}

/// SIGTERM (Kubernetes) or Ctrl-C: stop reconciling, release the lease, exit.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
