//! The agent-health scenario of `sigsci-kit demo`, against the demo's in-process simulator: an
//! outage, its notification, the acknowledgement link followed, recovery.

use std::sync::Arc;

use agent_health::{
    AckService, Clock, ConsoleSink, Deliverer, Evaluator, IncidentSync, Rules, SecretResolver,
    SigningKey, StateStore, SystemClock, new_run_id,
};
use anyhow::{Context, ensure};
use chrono::Utc;
use kit_storage::SecretSource;

use crate::health_status;
use crate::output::outln;

/// Takes `site`'s agents offline, evaluates, prints the console notification with its
/// acknowledgement link, follows the link as a person would (confirmation page, then Acknowledge),
/// evaluates again (silenced), recovers.
pub async fn run(
    client: &sigsci::Client,
    sim: &sigsci_sim::SimState,
    site: &str,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the acknowledgement server")?;
    let ack_base = format!("http://{}", listener.local_addr()?);
    let rules = Rules::parse(
        &format!(
            "ack: {{base_url: '{ack_base}', secret: 'secretsmanager:demo/ack-key'}}\n\
             channels:\n  - {{name: console, type: console, throttle_period: 1h}}\n"
        ),
        "demo rules",
    )?;
    // A throw-away signing key for this demo only.
    let key_json = serde_json::json!({ "key": agent_health::AckLink::new_nonce() }).to_string();
    let secrets: Arc<dyn SecretSource> =
        Arc::new(kit_storage::StaticSecrets::new().with("demo/ack-key", key_json));
    let resolver = SecretResolver::new(Some(secrets));
    let store = StateStore::for_corp(Arc::new(kit_storage::MemoryStore::new()), client.corp());
    let printed = Arc::new(std::sync::Mutex::new(String::new()));
    let sink = Arc::clone(&printed);
    let console: ConsoleSink = Arc::new(move |text: &str| {
        for line in text.lines() {
            outln!("    │ {line}");
        }
        if let Ok(mut all) = sink.lock() {
            all.push_str(text);
        }
    });
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let service = AckService {
        corp: client.corp().to_string(),
        store: store.clone(),
        rules: Arc::new(rules.clone()),
        key: SigningKey::from_secret(
            resolver.clone(),
            rules
                .ack
                .secret
                .clone()
                .context("demo rules have an ack secret")?,
            clock.now(),
        )
        .await?,
        clock: Arc::clone(&clock),
        incidents: IncidentSync {
            secrets: resolver.clone(),
            deliverer: Deliverer::new(Arc::clone(&console))?,
        },
    };
    let server = tokio::spawn(agent_health::serve(listener, service));
    let evaluator = Evaluator {
        client: client.clone(),
        store: store.clone(),
        secrets: resolver,
        deliverer: Deliverer::new(console)?,
        clock,
    };

    outln!("\nagent health (state in memory, acknowledgement pages on {ack_base}/ack)");
    let outcome = steps(&evaluator, &rules, sim, site, &printed).await;
    server.abort();
    outcome?;
    let (state, _) = store.load(client.corp()).await?;
    outln!("  status now:");
    for line in health_status::render(&state, Utc::now()).lines() {
        outln!("    {line}");
    }
    Ok(())
}

async fn steps(
    evaluator: &Evaluator,
    rules: &Rules,
    sim: &sigsci_sim::SimState,
    site: &str,
    printed: &std::sync::Mutex<String>,
) -> anyhow::Result<()> {
    let report = evaluator.run(rules, &new_run_id()).await?;
    outln!(
        "  1. all sites healthy: {} evaluated, {} firing",
        report.sites_evaluated,
        report.conditions_firing
    );

    let offline = sigsci_sim::FleetUpdate {
        online: Some(0),
        ..sigsci_sim::FleetUpdate::default()
    };
    sim.set_fleet(site, &offline)
        .map_err(|e| anyhow::anyhow!("cannot change the simulated fleet: {e}"))?;
    outln!("  2. {site}: every agent taken offline; evaluating, the console channel prints:");
    evaluator.run(rules, &new_run_id()).await?;
    let text = printed.lock().map(|t| t.clone()).unwrap_or_default();
    let link = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("acknowledge: "))
        .context("the notification carried no acknowledgement link")?
        .to_string();

    follow_link(&reqwest::Client::new(), &link).await?;

    let report = evaluator.run(rules, &new_run_id()).await?;
    outln!(
        "  4. evaluating again while {site} is still down: {} sent, {} silenced by the acknowledgement",
        report.notifications_sent,
        report.notifications_acknowledged
    );

    let online = sigsci_sim::FleetUpdate {
        online: Some(3),
        ..sigsci_sim::FleetUpdate::default()
    };
    sim.set_fleet(site, &online)
        .map_err(|e| anyhow::anyhow!("cannot change the simulated fleet: {e}"))?;
    outln!("  5. {site} back online; evaluating, the console channel prints:");
    evaluator.run(rules, &new_run_id()).await?;
    Ok(())
}

/// Opens the link and presses Acknowledge as a person would; any answer but 200 fails the demo.
async fn follow_link(http: &reqwest::Client, link: &str) -> anyhow::Result<()> {
    let page = http
        .get(link)
        .send()
        .await
        .context("opening the acknowledgement link")?;
    outln!(
        "  3. opening the link: HTTP {} (a confirmation page with an Acknowledge button)",
        page.status().as_u16()
    );
    ensure!(
        page.status() == reqwest::StatusCode::OK,
        "opening the acknowledgement link answered HTTP {}",
        page.status()
    );
    let mut form: Vec<(String, String)> =
        url::Url::parse(link)?.query_pairs().into_owned().collect();
    form.push(("by".into(), "demo user".into()));
    let action = link.split('?').next().unwrap_or(link).to_string();
    let confirmed = http
        .post(action)
        .form(&form)
        .send()
        .await
        .context("confirming the acknowledgement")?;
    outln!(
        "     pressing Acknowledge: HTTP {}",
        confirmed.status().as_u16()
    );
    ensure!(
        confirmed.status() == reqwest::StatusCode::OK,
        "pressing Acknowledge answered HTTP {}",
        confirmed.status()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use sigsci_sim::SimConfig;

    use super::*;
    use crate::cmd::demo::simulator_client;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn demo_walks_outage_ack_and_recovery_against_the_simulator() {
        let config = SimConfig::default();
        let sim = sigsci_sim::start(config.clone(), ([127, 0, 0, 1], 0).into())
            .await
            .unwrap();
        let client = simulator_client(&sim.base_url, &config).unwrap();
        run(&client, &sim.state, "site-2").await.unwrap();
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn a_refused_acknowledgement_link_fails_the_demo() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let service = AckService {
            corp: "testcorp".to_string(),
            store: StateStore::for_corp(Arc::new(kit_storage::MemoryStore::new()), "testcorp"),
            rules: Arc::new(Rules::default()),
            key: SigningKey::fixed("demo-key".to_string().into()),
            clock: Arc::new(SystemClock),
            incidents: IncidentSync {
                secrets: SecretResolver::default(),
                deliverer: Deliverer::new(Arc::new(|_: &str| {})).unwrap(),
            },
        };
        let server = tokio::spawn(agent_health::serve(listener, service));
        let unsigned = format!("{base}/ack?corp=testcorp&check=site-1/no_agents_online&sig=00");
        let error = follow_link(&reqwest::Client::new(), &unsigned)
            .await
            .unwrap_err();
        server.abort();
        assert!(error.to_string().contains("403"), "{error:#}");
    }
}
