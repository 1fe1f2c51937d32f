//! `sigsci-kit config plan|apply -f PATH`: the operator's manifests, planned and applied without
//! a cluster. Exit code 2 from `plan` means changes are pending (for CI of a GitOps repo).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use sigsci_config::{Change, PlanOptions, Summary, Verb, plan, render_plan};
use sigsci_operator::manifests::{self, ConnectionGroup, Manifests, SecretLookup};
use sigsci_operator::remote;

use crate::api_args::{ApiArgs, CredentialArgs};
use crate::output::{OutputArgs, paint_plan};

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
    Plan {
        #[command(flatten)]
        manifests: ManifestArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Make the remote configuration match the manifests.
    Apply(ManifestArgs),
}

// The shared e-mail flag, with config's note on where corp and API URL come from.
#[derive(Args, Debug)]
#[command(mut_arg("email", |email| email.help(
    "API user e-mail (the connection manifests name corp and API URL; credentials come from here)"
)))]
pub struct ManifestArgs {
    /// Manifest file, directory (its *.yaml and *.yml files), or - for stdin; repeatable:
    /// SigSciConnection, ClusterSigSciConnection, AgentAlert, Integration, SigSciList, and
    /// Secrets their urlFrom/valueFrom read.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Read the directories given with -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
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
        ConfigAction::Plan { manifests, output } => run_manifests(manifests, output, false).await,
        ConfigAction::Apply(args) => run_manifests(args, OutputArgs::default(), true).await,
    }
}

/// Every -f as kubectl reads it: `-` is stdin, a directory gives its *.yaml/*.yml files (all
/// levels with -R), anything else is one manifest file.
fn load(args: &ManifestArgs) -> anyhow::Result<Manifests> {
    let mut loaded = Manifests::default();
    for path in &args.paths {
        let context = || format!("cannot load manifests from {}", path.display());
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read manifests from stdin")?;
            manifests::load_str(&text, Path::new("<stdin>"), &args.namespace, &mut loaded)
                .with_context(context)?;
            continue;
        }
        let mut files = Vec::new();
        if path.is_dir() {
            yaml_files(path, args.recursive, &mut files).with_context(context)?;
            files.sort();
        } else {
            files.push(path.clone());
        }
        for file in files {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))
                .with_context(context)?;
            manifests::load_str(&text, &file, &args.namespace, &mut loaded)
                .with_context(context)?;
        }
    }
    Ok(loaded)
}

fn yaml_files(dir: &Path, recursive: bool, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            if recursive {
                yaml_files(&path, recursive, files)?;
            }
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            files.push(path);
        }
    }
    Ok(())
}

/// One connection's plan in `config plan -o json|yaml`.
#[derive(Serialize)]
struct PlanDocument {
    connection: String,
    corp: String,
    api_url: String,
    changes: Vec<ChangeDocument>,
}

#[derive(Serialize)]
struct ChangeDocument {
    /// `create`, `update` or `delete`.
    action: &'static str,
    object: String,
    /// The manifest that declares it (`None`: pruned, no manifest declares it).
    manifest: Option<String>,
    /// Field names an update changes.
    fields: Vec<&'static str>,
}

fn change_document(change: &Change) -> ChangeDocument {
    ChangeDocument {
        action: match change.verb() {
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Delete => "delete",
        },
        object: subject(change),
        manifest: change.address().map(ToString::to_string),
        fields: change.updated_fields(),
    }
}

async fn run_manifests(
    args: ManifestArgs,
    output: OutputArgs,
    apply: bool,
) -> anyhow::Result<ExitCode> {
    let loaded = load(&args)?;
    let secrets = SecretLookup::new(&loaded.secrets, |name| std::env::var(name).ok());
    let groups = manifests::desired_by_connection(&loaded, &secrets)?;
    let document = output.is_document();
    if groups.is_empty() {
        let names: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        if document {
            output.print_document(&serde_json::json!({ "plans": [] }))?;
        } else {
            println!(
                "No AgentAlert, Integration or SigSciList manifests in {}.",
                names.join(", ")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let options = PlanOptions {
        prune: args.prune,
        now: chrono::Utc::now(),
    };
    let mut total = Summary::default();
    let mut plans = Vec::new();
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
        let changes = plan(&group.desired, &observed, options)
            .with_context(|| format!("cannot plan {}", group.target.connection))?;
        if document {
            plans.push(PlanDocument {
                connection: group.target.connection.clone(),
                corp: group.target.corp.clone(),
                api_url: group.target.api_url.clone(),
                changes: changes.iter().map(change_document).collect(),
            });
        } else {
            println!(
                "{} (corp {} at {}):",
                group.target.connection, group.target.corp, group.target.api_url
            );
            print!("{}", paint_plan(&render_plan(&changes)));
        }
        let summary = Summary::of(&changes);
        total.create += summary.create;
        total.update += summary.update;
        total.delete += summary.delete;
        if apply {
            apply_changes(&client, &changes).await?;
        }
        if !document {
            println!();
        }
    }
    if document {
        output.print_document(&serde_json::json!({
            "plans": plans,
            "summary": { "create": total.create, "update": total.update, "delete": total.delete },
        }))?;
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
        Change::List(list) => format!("{} list {:?}", list.location, list.name),
    }
}
