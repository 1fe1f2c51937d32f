//! `sigsci-kit sites` and `sigsci-kit agents`: read-only views of the corp.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::api_args::ApiArgs;

#[derive(Args, Debug)]
pub struct AgentsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Site short name.
    #[arg(long)]
    pub site: String,
}

pub async fn list_sites(api: ApiArgs) -> anyhow::Result<ExitCode> {
    let client = api.client()?;
    let sites = client.list_sites().await.with_context(|| {
        format!(
            "listing the sites of corp {} at {}",
            client.corp(),
            api.api_url
        )
    })?;
    for site in sites {
        println!("{}\t{}\t{}", site.name, site.agent_level, site.display_name);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(args: AgentsArgs) -> anyhow::Result<ExitCode> {
    let client = args.api.client()?;
    let agents = client.list_agents(&args.site).await.with_context(|| {
        format!(
            "listing the agents of site {} at {}",
            args.site, args.api.api_url
        )
    })?;
    for agent in agents {
        println!(
            "{}\t{}\t{}\t{}",
            agent.name,
            agent.status,
            agent.version,
            agent
                .last_seen
                .map(|seen| seen.to_rfc3339())
                .unwrap_or_else(|| "never".to_string())
        );
    }
    Ok(ExitCode::SUCCESS)
}
