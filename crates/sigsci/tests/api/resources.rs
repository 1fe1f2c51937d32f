//! Sites, agents, alerts and integrations round-trip through the simulator.

use anyhow::{Result, ensure};
use serde_json::json;
use sigsci::{AlertBody, Error, IntegrationBody, IntegrationUpdate};

use crate::common::Sim;

#[tokio::test]
async fn corp_sites_and_agents() -> Result<()> {
    let sim = Sim::default().await?;
    let client = sim.client()?;
    ensure!(client.corp() == "testcorp");
    ensure!(client.get_corp().await?.name == "testcorp");
    let sites = client.list_sites().await?;
    let names: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
    ensure!(names == ["site-1", "site-2", "site-3"], "{names:?}");
    ensure!(sites[0].display_name == "Site 1");

    sim.set_fleet(
        "site-2",
        json!({ "count": 3, "online": 2, "rps": 30.0, "versions_behind": 1 }),
    )
    .await?;
    let agents = client.list_agents("site-2").await?;
    ensure!(agents.len() == 3, "{agents:?}");
    let online: Vec<_> = agents.iter().filter(|a| a.status == "online").collect();
    ensure!(online.len() == 2 && online.iter().all(|a| a.active));
    // 30 rps over a 30 s report interval, shared by the online agents.
    let requests: i64 = agents.iter().map(|a| a.current_requests).sum();
    ensure!(
        (800..=1000).contains(&requests),
        "current_requests sum {requests}"
    );
    let offline = agents.iter().find(|a| a.status == "offline");
    ensure!(offline.is_some_and(|a| !a.active && a.current_requests == 0));
    ensure!(
        agents
            .iter()
            .all(|a| a.versions_behind == 1 && a.last_seen.is_some())
    );
    sim.running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn alert_lifecycle() -> Result<()> {
    let sim = Sim::default().await?;
    let client = sim.client()?;
    let seeded = client.list_alerts("site-1").await?;
    let tags: Vec<&str> = seeded.iter().map(|a| a.tag_name.as_str()).collect();
    ensure!(
        tags.contains(&"requests_total") && tags.contains(&"agent_scoreboards"),
        "{tags:?}"
    );

    let created = client
        .create_alert(
            "site-1",
            &AlertBody {
                tag_name: Some("XSS".into()),
                long_name: Some("XSS burst".into()),
                interval: Some(10),
                threshold: Some(25),
                enabled: Some(true),
                action: Some("flagged".into()),
                ..AlertBody::default()
            },
        )
        .await?;
    ensure!(!created.id.is_empty() && created.tag_name == "XSS" && created.threshold == 25);
    ensure!(!created.site_id.is_empty(), "siteId decoded");
    ensure!(client.get_alert("site-1", &created.id).await? == created);

    let updated = client
        .update_alert(
            "site-1",
            &created.id,
            &AlertBody {
                enabled: Some(false),
                ..AlertBody::default()
            },
        )
        .await?;
    ensure!(!updated.enabled && updated.threshold == 25);
    client.delete_alert("site-1", &created.id).await?;
    let gone = client.get_alert("site-1", &created.id).await;
    ensure!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
    sim.running.shutdown().await;
    Ok(())
}

fn slack(url: &str) -> IntegrationBody {
    IntegrationBody {
        integration_type: "slack".into(),
        url: url.into(),
        events: vec!["flag".into(), "agentAlert".into()],
        fields: None,
    }
}

#[tokio::test]
async fn site_integration_lifecycle_returns_the_created_item() -> Result<()> {
    let sim = Sim::default().await?;
    let client = sim.client()?;
    let first = client
        .create_site_integration("site-1", &slack("https://hooks.example/a"))
        .await?;
    let second = client
        .create_site_integration("site-1", &slack("https://hooks.example/b"))
        .await?;
    ensure!(first.id != second.id);
    ensure!(first.url == "https://hooks.example/a" && second.url == "https://hooks.example/b");
    ensure!(client.list_site_integrations("site-1").await?.len() == 2);

    client
        .update_site_integration(
            "site-1",
            &first.id,
            &IntegrationUpdate {
                events: Some(vec!["flag".into()]),
                ..IntegrationUpdate::default()
            },
        )
        .await?;
    ensure!(
        client
            .get_site_integration("site-1", &first.id)
            .await?
            .events
            == ["flag"]
    );
    client.delete_site_integration("site-1", &first.id).await?;
    let gone = client.get_site_integration("site-1", &first.id).await;
    ensure!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
    sim.running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn corp_integration_lifecycle() -> Result<()> {
    let sim = Sim::default().await?;
    let client = sim.client()?;
    let created = client
        .create_corp_integration(&IntegrationBody {
            integration_type: "mailingList".into(),
            url: "secops@example.com".into(),
            events: vec!["newSite".into()],
            fields: None,
        })
        .await?;
    ensure!(created.integration_type == "mailingList" && !created.id.is_empty());
    ensure!(
        client
            .list_corp_integrations()
            .await?
            .iter()
            .any(|i| i.id == created.id)
    );
    client
        .update_corp_integration(
            &created.id,
            &IntegrationUpdate {
                url: Some("soc@example.com".into()),
                ..IntegrationUpdate::default()
            },
        )
        .await?;
    ensure!(client.get_corp_integration(&created.id).await?.url == "soc@example.com");
    client.delete_corp_integration(&created.id).await?;
    let gone = client.get_corp_integration(&created.id).await;
    ensure!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
    sim.running.shutdown().await;
    Ok(())
}
