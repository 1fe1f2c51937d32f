//! `sigsci-kit sites` and `sigsci-kit agents`: read-only views of the corp.

use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;

use crate::api_args::ApiArgs;
use crate::output::{OutputArgs, Table, age, out};

#[derive(Args, Debug)]
pub struct SitesArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct AgentsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Site short name (repeatable).
    #[arg(long = "site", required = true)]
    pub sites: Vec<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// One site in `sites -o json|yaml`.
#[derive(Serialize)]
struct SiteDocument {
    name: String,
    display_name: String,
    agent_level: String,
    created: Option<DateTime<Utc>>,
}

/// One agent in `agents -o json|yaml`.
#[derive(Serialize)]
struct AgentDocument {
    site: String,
    name: String,
    status: String,
    active: bool,
    version: String,
    versions_behind: i64,
    current_requests: i64,
    last_seen: Option<DateTime<Utc>>,
    addr: String,
}

pub async fn list_sites(args: SitesArgs) -> anyhow::Result<ExitCode> {
    let client = args.api.client()?;
    let sites = client.list_sites().await.with_context(|| {
        format!(
            "listing the sites of corp {} at {}",
            client.corp(),
            args.api.api_url
        )
    })?;
    let sites: Vec<SiteDocument> = sites
        .into_iter()
        .map(|site| SiteDocument {
            name: site.name,
            display_name: site.display_name,
            agent_level: site.agent_level,
            created: site.created,
        })
        .collect();
    if args.output.is_document() {
        args.output
            .print_document(&serde_json::json!({ "sites": sites }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let now = Utc::now();
    let mut table = Table::new(vec!["NAME", "AGENT LEVEL", "DISPLAY NAME", "AGE"]);
    for site in &sites {
        table.row(vec![
            site.name.clone(),
            site.agent_level.clone(),
            site.display_name.clone(),
            site.created
                .map_or_else(|| "-".to_string(), |at| age(now, at)),
        ]);
    }
    out!("{}", table.render());
    Ok(ExitCode::SUCCESS)
}

pub async fn run(args: AgentsArgs) -> anyhow::Result<ExitCode> {
    let client = args.api.client()?;
    let mut agents = Vec::new();
    for site in &args.sites {
        let listed = client.list_agents(site).await.with_context(|| {
            format!("listing the agents of site {site} at {}", args.api.api_url)
        })?;
        agents.extend(listed.into_iter().map(|agent| AgentDocument {
            site: site.clone(),
            name: agent.name,
            status: agent.status,
            active: agent.active,
            version: agent.version,
            versions_behind: agent.versions_behind,
            current_requests: agent.current_requests,
            last_seen: agent.last_seen,
            addr: agent.addr,
        }));
    }
    if args.output.is_document() {
        args.output
            .print_document(&serde_json::json!({ "agents": agents }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let now = Utc::now();
    let wide = args.output.wide();
    let mut headers = vec!["SITE", "NAME", "STATUS", "VERSION", "LAST SEEN"];
    if wide {
        headers.extend(["BEHIND", "REQUESTS", "ADDRESS"]);
    }
    let mut table = Table::new(headers);
    for agent in &agents {
        let mut row = vec![
            agent.site.clone(),
            agent.name.clone(),
            agent.status.clone(),
            agent.version.clone(),
            agent
                .last_seen
                .map_or_else(|| "never".to_string(), |seen| age(now, seen)),
        ];
        if wide {
            row.extend([
                agent.versions_behind.to_string(),
                agent.current_requests.to_string(),
                agent.addr.clone(),
            ]);
        }
        table.row(row);
    }
    out!("{}", table.render());
    Ok(ExitCode::SUCCESS)
}
