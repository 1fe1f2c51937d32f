//! `sigsci-kit config plan|apply -f DIR`: the operator's manifests, planned and applied without
//! a cluster. Exit code 2 from `plan` means changes are pending (for CI of a GitOps repo).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use sigsci_config::{Change, PlanOptions, Summary, Verb, plan, render_plan};
use sigsci_operator::manifests::{self, ConnectionGroup, SecretLookup};
use sigsci_operator::remote;

use crate::api_args::{ApiArgs, CredentialArgs};

/// Exit code of `config plan` when the remote differs from the manifests.
const CHANGES_PENDING: u8 = 2;

#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Show what apply would create, change (field by field) or delete; exit 2 if anything.
    Plan(ManifestArgs),
    /// Make the remote configuration match the manifests.
    Apply(ManifestArgs),
}

// The shared e-mail flag, with config's note on where corp and API URL come from.
#[derive(Args, Debug)]
#[command(mut_arg("email", |email| email.help(
    "API user e-mail (the connection manifests name corp and API URL; credentials come from here)"
)))]
pub struct ManifestArgs {
    /// Directory of manifests (searched recursively for *.yaml and *.yml): SigSciConnection,
    /// ClusterSigSciConnection, AgentAlert, Integration, and Secrets their urlFrom/valueFrom read.
    #[arg(short = 'f', long = "filename")]
    pub dir: PathBuf,
    /// Namespace of manifests that name none.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Also delete integrations that no manifest declares, in each site (or the corp) where the
    /// manifests declare integrations.
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub credentials: CredentialArgs,
}

pub async fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        ConfigAction::Plan(args) => run_manifests(args, false).await,
        ConfigAction::Apply(args) => run_manifests(args, true).await,
    }
}

async fn run_manifests(args: ManifestArgs, apply: bool) -> anyhow::Result<ExitCode> {
    let loaded = manifests::load_dir(&args.dir, &args.namespace)
        .with_context(|| format!("cannot load manifests from {}", args.dir.display()))?;
    let secrets = SecretLookup::new(&loaded.secrets, |name| std::env::var(name).ok());
    let groups = manifests::desired_by_connection(&loaded, &secrets)?;
    if groups.is_empty() {
        println!(
            "No AgentAlert or Integration manifests in {}.",
            args.dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let options = PlanOptions { prune: args.prune };
    let mut total = Summary::default();
    for group in &groups {
        let client = client_for(&args, group)?;
        let observed = manifests::observe(&client, &group.desired)
            .await
            .with_context(|| {
                format!(
                    "cannot read the remote state of {}",
                    group.target.connection
                )
            })?;
        let changes = plan(&group.desired, &observed, options);
        println!(
            "{} (corp {} at {}):",
            group.target.connection, group.target.corp, group.target.api_url
        );
        print!("{}", render_plan(&changes));
        let summary = Summary::of(&changes);
        total.create += summary.create;
        total.update += summary.update;
        total.delete += summary.delete;
        if apply {
            apply_changes(&client, &changes).await?;
        }
        println!();
    }
    if apply {
        println!(
            "Apply complete: {} created, {} changed, {} deleted.",
            total.create, total.update, total.delete
        );
        Ok(ExitCode::SUCCESS)
    } else if total.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(CHANGES_PENDING))
    }
}

fn client_for(args: &ManifestArgs, group: &ConnectionGroup) -> anyhow::Result<sigsci::Client> {
    let api = ApiArgs {
        api_url: group.target.api_url.clone(),
        corp: Some(group.target.corp.clone()),
        credentials: args.credentials.clone(),
    };
    api.client()
        .with_context(|| format!("cannot connect for {}", group.target.connection))
}

async fn apply_changes(client: &sigsci::Client, changes: &[Change]) -> anyhow::Result<()> {
    for change in changes {
        let applied = remote::execute(client, change)
            .await
            .with_context(|| format!("cannot apply the change to {}", subject(change)))?;
        let verb = match change.verb() {
            Verb::Create => "created",
            Verb::Update => "updated",
            Verb::Delete => "deleted",
        };
        match applied.remote_id {
            Some(id) => println!("{verb} {} (id {id})", subject(change)),
            None => println!("{verb} {}", subject(change)),
        }
    }
    Ok(())
}

fn subject(change: &Change) -> String {
    match change {
        Change::Alert(alert) => format!("site {} alert {}", alert.site, alert.tag_name),
        Change::Integration(integration) => {
            format!("{} {} integration", integration.location, integration.kind)
        }
    }
}
