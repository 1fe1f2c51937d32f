//! `sigsci-kit config plan|apply -f PATH`: the operator's manifests, planned and applied without
//! a cluster. Exit codes: 0 done (plan: in sync), 2 from `plan` when changes are pending (for CI
//! of a GitOps repo), 1 on any error (nothing is applied when the manifests conflict).
//!
//! `apply` records each object it manages in a state file; the plan shows the removal of a
//! recorded object no manifest declares any more, and only `apply --prune` carries it out, under
//! the deletion policy the manifest had. Remote objects no apply recorded are never removed.
//!
//! `managementPolicy: ObserveOnly` objects are planned to show how their remote objects differ
//! (after the plan, and with `observe_only: true` in `-o json|yaml`), never applied, never
//! recorded, and their differences alone leave `plan`'s exit code 0: no apply could change them.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use sigsci_config::managed::{STATE_VERSION, use_recorded_ids};
use sigsci_config::{
    Address, AppliedState, Change, DesiredState, Managed, Plan, PlanOptions, Removal, Summary,
    Verb, bindings, plan_removals, plan_split, render_plan_with_removals,
};
use sigsci_operator::manifests::{self, ConnectionGroup, Manifests, SecretLookup, Target};
use sigsci_operator::remote;

use crate::api_args::{ApiArgs, CredentialArgs};
use crate::output::{OutputArgs, out, outln, paint_plan};

/// Exit code of `config plan` when the remote differs from the manifests.
const CHANGES_PENDING: u8 = 2;
/// The state file's name beside the manifests.
const STATE_FILE: &str = "sigsci-kit.state.json";

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
    /// Make the remote configuration match the manifests, and record what it manages.
    Apply {
        #[command(flatten)]
        manifests: ManifestArgs,
        /// Also remove what the state file records and no manifest declares any more, each under
        /// its deletionPolicy (AgentAlert: Disable, Delete or Orphan; Integration and SigSciList:
        /// Delete or Orphan). Remote objects no apply recorded are never touched.
        #[arg(long)]
        prune: bool,
    },
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
    /// State file: what apply manages, for --prune [default: sigsci-kit.state.json in the
    /// first -f directory, or beside the first -f file; none for -f -]
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    #[command(flatten)]
    pub credentials: CredentialArgs,
}

pub async fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        ConfigAction::Plan { manifests, output } => {
            run_manifests(manifests, output, Mode::Plan).await
        }
        ConfigAction::Apply { manifests, prune } => {
            run_manifests(manifests, OutputArgs::default(), Mode::Apply { prune }).await
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Plan,
    Apply { prune: bool },
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
    /// The manifest that declares it (or declared it, for a removal).
    manifest: String,
    /// Field names an update changes.
    fields: Vec<&'static str>,
    /// No manifest declares it any more: only `apply --prune` carries it out.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    prune: bool,
    /// The manifest is `managementPolicy: ObserveOnly`: what differs, never applied.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    observe_only: bool,
}

fn change_document(change: &Change, prune: bool, observe_only: bool) -> ChangeDocument {
    ChangeDocument {
        action: match change.verb() {
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Delete => "delete",
        },
        object: subject(change),
        manifest: change.address().to_string(),
        fields: change.updated_fields(),
        prune,
        observe_only,
    }
}

/// Where the state file is: `--state`, else beside the first manifests given (none for stdin).
fn state_path(args: &ManifestArgs) -> Option<PathBuf> {
    if let Some(path) = &args.state {
        return Some(path.clone());
    }
    let first = args.paths.first()?;
    if first.as_os_str() == "-" {
        None
    } else if first.is_dir() {
        Some(first.join(STATE_FILE))
    } else {
        Some(
            first
                .parent()
                .map_or_else(|| PathBuf::from(STATE_FILE), |dir| dir.join(STATE_FILE)),
        )
    }
}

/// A missing state file is an empty one: nothing was applied from here yet.
fn read_state(path: Option<&Path>) -> anyhow::Result<AppliedState> {
    let Some(path) = path else {
        return Ok(AppliedState::default());
    };
    let context = || format!("cannot read the state file {}", path.display());
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(AppliedState::default());
        }
        Err(error) => return Err(error).with_context(context),
    };
    let state: AppliedState = serde_json::from_str(&text).with_context(context)?;
    if state.version > STATE_VERSION {
        anyhow::bail!(
            "the state file {} has version {}; this sigsci-kit reads version {STATE_VERSION}",
            path.display(),
            state.version
        );
    }
    Ok(state)
}

/// Written whole to a temporary file then renamed, so an interruption leaves the old state.
fn write_state(path: &Path, state: &AppliedState) -> anyhow::Result<()> {
    let context = || format!("cannot write the state file {}", path.display());
    let mut text = serde_json::to_string_pretty(state).with_context(context)?;
    text.push('\n');
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, text).with_context(context)?;
    std::fs::rename(&temporary, path).with_context(context)
}

/// One API URL and corp to plan: a connection of the manifests, or one only the state file
/// still names (every manifest of it removed).
struct Planned<'a> {
    target: Target,
    desired: DesiredState,
    group: Option<&'a ConnectionGroup>,
    records: Vec<Managed>,
}

/// Pair every connection with its records, and add the recorded connections no manifest uses.
fn targets<'a>(groups: &'a [ConnectionGroup], state: &AppliedState) -> Vec<Planned<'a>> {
    let mut planned: Vec<Planned<'a>> = groups
        .iter()
        .map(|group| Planned {
            target: group.target.clone(),
            desired: group.desired.clone(),
            group: Some(group),
            records: Vec::new(),
        })
        .collect();
    for record in &state.objects {
        match planned
            .iter_mut()
            .find(|p| record.is_at(&p.target.api_url, &p.target.corp))
        {
            Some(existing) => existing.records.push(record.clone()),
            None => planned.push(Planned {
                target: Target {
                    connection: record.connection.clone(),
                    corp: record.corp.clone(),
                    api_url: record.api_url.clone(),
                },
                desired: DesiredState::default(),
                group: None,
                records: vec![record.clone()],
            }),
        }
    }
    planned
}

async fn run_manifests(
    args: ManifestArgs,
    output: OutputArgs,
    mode: Mode,
) -> anyhow::Result<ExitCode> {
    let loaded = load(&args)?;
    let secrets = SecretLookup::new(&loaded.secrets, |name| std::env::var(name).ok());
    let corp_sites = list_corp_sites(&args, &loaded).await?;
    let groups = manifests::desired_by_connection(&loaded, &secrets, &corp_sites)?;
    let state_file = state_path(&args);
    if mode == (Mode::Apply { prune: true }) && state_file.is_none() {
        anyhow::bail!(
            "--prune removes only what the state file records: with -f - name it with --state FILE"
        );
    }
    let state = read_state(state_file.as_deref())?;
    let document = output.is_document();
    if groups.is_empty() && state.objects.is_empty() {
        let names: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        if document {
            output.print_document(&serde_json::json!({ "plans": [] }))?;
        } else {
            outln!(
                "No AgentAlert, Integration or SigSciList manifests in {}.",
                names.join(", ")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let options = PlanOptions {
        now: chrono::Utc::now(),
    };
    let mut total = Summary::default();
    let mut held_back = 0;
    let mut plans = Vec::new();
    let mut next_state = AppliedState::default();
    for planned in targets(&groups, &state) {
        let Planned {
            target,
            mut desired,
            group,
            records,
        } = planned;
        let client = client_for(&args, &target)?;
        let recorded: Vec<&Managed> = records.iter().collect();
        use_recorded_ids(&mut desired, &recorded);
        let mut reads = desired.reads();
        for record in &records {
            reads.add(record);
        }
        let observed = manifests::observe(&client, &reads)
            .await
            .with_context(|| format!("cannot read the remote state of {}", target.connection))?;
        let Plan {
            changes,
            observe_only,
        } = plan_split(&desired, &observed, options)
            .with_context(|| format!("cannot plan {}", target.connection))?;
        let mut ids = bindings(&desired, &observed);
        let removals = plan_removals(&records, &desired, &ids, &observed);
        let pending: Vec<Change> = removals
            .iter()
            .filter_map(Removal::change)
            .cloned()
            .collect();
        if document {
            let declared = changes
                .iter()
                .map(|change| change_document(change, false, false));
            let pruned = pending
                .iter()
                .map(|change| change_document(change, true, false));
            let observed_only = observe_only
                .iter()
                .map(|change| change_document(change, false, true));
            plans.push(PlanDocument {
                connection: target.connection.clone(),
                corp: target.corp.clone(),
                api_url: target.api_url.clone(),
                changes: declared.chain(pruned).chain(observed_only).collect(),
            });
        } else {
            outln!(
                "{} (corp {} at {}):",
                target.connection,
                target.corp,
                target.api_url
            );
            out!(
                "{}",
                paint_plan(&render_plan_with_removals(
                    &changes,
                    &removals,
                    &observe_only
                ))
            );
        }
        let declared = Summary::of(&changes);
        let removed = Summary::of(&pending);
        total.create += declared.create;
        total.update += declared.update;
        total.delete += declared.delete;
        match mode {
            Mode::Plan => {
                total.update += removed.update;
                total.delete += removed.delete;
            }
            Mode::Apply { prune } => {
                ids.extend(apply_changes(&client, &changes).await?);
                if let Some(group) = group {
                    next_state
                        .objects
                        .extend(manifests::records(&loaded, group, &ids));
                }
                if prune {
                    apply_changes(&client, &pending).await?;
                    total.update += removed.update;
                    total.delete += removed.delete;
                } else {
                    held_back += pending.len();
                    // Kept until an apply with --prune carries the removal out.
                    next_state.objects.extend(
                        removals
                            .iter()
                            .filter(|removal| removal.change().is_some())
                            .map(|removal| removal.record.clone()),
                    );
                }
            }
        }
        if !document {
            outln!();
        }
    }
    if document {
        output.print_document(&serde_json::json!({
            "plans": plans,
            "summary": { "create": total.create, "update": total.update, "delete": total.delete },
        }))?;
    }
    match mode {
        Mode::Plan if total.is_empty() => Ok(ExitCode::SUCCESS),
        Mode::Plan => Ok(ExitCode::from(CHANGES_PENDING)),
        Mode::Apply { .. } => {
            outln!(
                "Apply complete: {} created, {} changed, {} deleted.",
                total.create,
                total.update,
                total.delete
            );
            if held_back > 0 {
                outln!(
                    "Not applied: {held_back} removal(s) of objects no manifest declares any more; `config apply --prune` applies them."
                );
            }
            match &state_file {
                Some(path) => {
                    next_state.objects.sort_by(|a, b| {
                        (&a.api_url, &a.corp, a.address()).cmp(&(&b.api_url, &b.corp, b.address()))
                    });
                    write_state(path, &next_state)?;
                    outln!(
                        "State: {} managed object(s) recorded in {}.",
                        next_state.objects.len(),
                        path.display()
                    );
                }
                None => outln!("State: not recorded (manifests from stdin without --state)."),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The corp's sites of each connection an AgentAlert with `sites: all` uses, listed now: a site
/// created since the last apply gets the alert on the next one.
async fn list_corp_sites(
    args: &ManifestArgs,
    loaded: &Manifests,
) -> anyhow::Result<manifests::CorpSites> {
    let mut corp_sites = manifests::CorpSites::new();
    for target in manifests::all_sites_targets(loaded)? {
        let sites = client_for(args, &target)?
            .list_sites()
            .await
            .with_context(|| format!("cannot list the sites of {}", target.connection))?;
        let mut names: Vec<String> = sites.into_iter().map(|site| site.name).collect();
        names.sort();
        corp_sites.insert(target.connection.clone(), names);
    }
    Ok(corp_sites)
}

fn client_for(args: &ManifestArgs, target: &Target) -> anyhow::Result<sigsci::Client> {
    let api = ApiArgs {
        api_url: target.api_url.clone(),
        corp: Some(target.corp.clone()),
        credentials: args.credentials.clone(),
    };
    api.client()
        .with_context(|| format!("cannot connect for {}", target.connection))
}

/// Carry out the changes in order; the ids of what was created, by declaration.
async fn apply_changes(
    client: &sigsci::Client,
    changes: &[Change],
) -> anyhow::Result<BTreeMap<Address, String>> {
    let mut created = BTreeMap::new();
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
            Some(id) => {
                outln!("{verb} {} (id {id})", subject(change));
                if change.verb() == Verb::Create {
                    created.insert(change.address().clone(), id);
                }
            }
            None => outln!("{verb} {}", subject(change)),
        }
    }
    Ok(created)
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
