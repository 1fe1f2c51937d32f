//! `sigsci-kit lists block`: the incident responder's entry point to lists as code. It writes (or
//! updates) a `SigSciList` manifest with time-bound entries, for a pull request, and with
//! `--apply` also adds the entries to the remote list at once. Expiry is enforced by whatever
//! reconciles the manifest (`config apply`, the operator), so the manifest is the record.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand};
use serde_yaml::{Mapping, Value};
use sigsci_config::{
    Change, DesiredList, FieldDiff, ListChange, ListType, ListWrite, Op, Shown, find_list,
};
use sigsci_operator::manifests::{self, Manifests};
use sigsci_operator::remote;

use crate::api_args::ApiArgs;
use crate::output::outln;
use crate::times::{self, Relative};

const API_VERSION: &str = "sigsci-kit.io/v1alpha1";

#[derive(Args, Debug)]
pub struct ListsArgs {
    #[command(subcommand)]
    pub action: ListsAction,
}

#[derive(Subcommand, Debug)]
pub enum ListsAction {
    /// Add IP addresses or ranges to an ip list for a while: write the SigSciList manifest
    /// (for a PR) and, with --apply, add them to the remote list now.
    Block(BlockArgs),
}

#[derive(Args, Debug)]
pub struct BlockArgs {
    /// Site short name; without it the list is a corp list.
    #[arg(long)]
    pub site: Option<String>,
    /// IPv4/IPv6 address or CIDR range to block; repeatable.
    #[arg(long = "ip", value_name = "CIDR", required = true)]
    pub ips: Vec<String>,
    /// How long the entries hold (24h, 1h30m, 2d).
    #[arg(long = "for", value_name = "DURATION", conflicts_with = "until")]
    pub duration: Option<String>,
    /// When the entries stop holding (RFC 3339, a date, epoch seconds, or a duration ahead).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Why (kept in the manifest next to each entry).
    #[arg(long, default_value = "")]
    pub comment: String,
    /// The list's name in the API.
    #[arg(long, default_value = "blocked-ips")]
    pub list: String,
    /// The manifest file to create or update (other documents in it are kept).
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE",
        required_unless_present = "apply"
    )]
    pub file: Option<PathBuf>,
    /// The SigSciConnection the manifest refers to.
    #[arg(long, default_value = "sigsci")]
    pub connection: String,
    /// Namespace of the SigSciList object (and of its connection).
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Also add the entries to the remote list now (creating the list if needed); entries
    /// already there are left alone.
    #[arg(long)]
    pub apply: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

pub async fn run(args: ListsArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        ListsAction::Block(args) => block(args).await,
    }
}

async fn block(args: BlockArgs) -> anyhow::Result<ExitCode> {
    for ip in &args.ips {
        if let Err(problem) = ListType::Ip.check_value(ip) {
            bail!("--ip {ip:?} {problem}");
        }
    }
    let now = Utc::now();
    let expires = match (&args.duration, &args.until) {
        (Some(duration), _) => Some(times::parse("--for", duration, now, Relative::Ahead)?),
        (None, Some(until)) => Some(times::parse("--until", until, now, Relative::Ahead)?),
        (None, None) => None,
    };
    if expires.is_some_and(|expires| expires <= now) {
        bail!("the entries would expire at once: give a time ahead of now");
    }
    let mut documents = match &args.file {
        Some(file) if file.exists() => read_documents(file)?,
        _ => Vec::new(),
    };
    upsert_entries(&mut documents, &args, expires)?;
    let text = render_documents(&documents)?;
    // Read back as `config plan` would: strict fields, then the plan's own validation.
    let mut loaded = Manifests::default();
    let origin = args
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from("<block>"));
    manifests::load_str(&text, &origin, &args.namespace, &mut loaded)?;
    let desired = declared_list(&loaded, &args)?;
    desired
        .validate()
        .map_err(|problems| anyhow::anyhow!("{}: {problems}", desired.address))?;
    let until = expires
        .map(|at| format!(" until {}", at.to_rfc3339_opts(SecondsFormat::Secs, true)))
        .unwrap_or_default();
    if let Some(file) = &args.file {
        std::fs::write(file, &text).with_context(|| format!("cannot write {}", file.display()))?;
        outln!(
            "{}: {} in {} ({}{until})",
            file.display(),
            desired.address,
            desired.location,
            args.ips.join(", ")
        );
    }
    if args.apply {
        apply(&args, &desired).await?;
    }
    Ok(ExitCode::SUCCESS)
}

fn read_documents(file: &Path) -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(document)
            .with_context(|| format!("{} is not YAML", file.display()))?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

fn render_documents(documents: &[Value]) -> anyhow::Result<String> {
    let mut text = String::new();
    for (index, document) in documents.iter().enumerate() {
        if index > 0 {
            text.push_str("---\n");
        }
        text.push_str(&serde_yaml::to_string(document).context("cannot render the manifest")?);
    }
    Ok(text)
}

fn is_our_list(document: &Value, args: &BlockArgs) -> bool {
    let spec = &document["spec"];
    document["apiVersion"].as_str() == Some(API_VERSION)
        && document["kind"].as_str() == Some("SigSciList")
        && spec["name"].as_str() == Some(args.list.as_str())
        && spec["site"].as_str() == args.site.as_deref()
}

/// Adds the entries to the document of the list (a new document when there is none); an entry
/// already declared gets the new expiry and comment.
fn upsert_entries(
    documents: &mut Vec<Value>,
    args: &BlockArgs,
    expires: Option<DateTime<Utc>>,
) -> anyhow::Result<()> {
    let index = match documents.iter().position(|d| is_our_list(d, args)) {
        Some(index) => index,
        None => {
            documents.push(new_document(args)?);
            documents.len() - 1
        }
    };
    let spec = documents[index]
        .get_mut("spec")
        .and_then(Value::as_mapping_mut)
        .context("the SigSciList document has no spec")?;
    let entries = spec
        .entry(Value::from("entries"))
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if entries.is_null() {
        *entries = Value::Sequence(Vec::new());
    }
    let entries = entries
        .as_sequence_mut()
        .context("spec.entries of the SigSciList is not a list")?;
    for ip in &args.ips {
        let mut entry = Mapping::new();
        entry.insert("value".into(), ip.as_str().into());
        if let Some(expires) = expires {
            let text = expires.to_rfc3339_opts(SecondsFormat::Secs, true);
            entry.insert("expires".into(), text.into());
        }
        if !args.comment.is_empty() {
            entry.insert("comment".into(), args.comment.as_str().into());
        }
        match entries
            .iter_mut()
            .find(|existing| existing["value"].as_str() == Some(ip))
        {
            Some(existing) => *existing = Value::Mapping(entry),
            None => entries.push(Value::Mapping(entry)),
        }
    }
    Ok(())
}

fn new_document(args: &BlockArgs) -> anyhow::Result<Value> {
    let object_name: String = args
        .site
        .iter()
        .chain(std::iter::once(&args.list))
        .map(|part| part.as_str())
        .collect::<Vec<_>>()
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let scope = if args.site.is_some() { "Site" } else { "Corp" };
    let mut spec = serde_yaml::to_value(serde_json::json!({
        "connectionRef": {"name": args.connection},
        "scope": scope,
        "name": args.list,
        "type": "ip",
        "description": "Blocked with sigsci-kit lists block",
        "entries": [],
    }))?;
    if let (Some(site), Some(map)) = (&args.site, spec.as_mapping_mut()) {
        map.insert("site".into(), site.as_str().into());
    }
    Ok(serde_yaml::to_value(serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": "SigSciList",
        "metadata": {"name": object_name.trim_matches('-'), "namespace": args.namespace},
    }))
    .map(|mut document| {
        if let Some(map) = document.as_mapping_mut() {
            map.insert("spec".into(), spec);
        }
        document
    })?)
}

/// The list declaration the updated document now holds, in the plan's terms.
fn declared_list(loaded: &Manifests, args: &BlockArgs) -> anyhow::Result<DesiredList> {
    let list = loaded
        .lists
        .iter()
        .find(|list| list.spec.name == args.list && list.spec.site == args.site)
        .context("the written manifest does not declare the list")?;
    let namespace = list.metadata.namespace.clone().unwrap_or_default();
    let name = list.metadata.name.clone().unwrap_or_default();
    Ok(list.desired(&namespace, &name, None))
}

/// Adds the blocked values to the remote list (creating it), never removing anything: the
/// responder's other entries stay, and expiry is left to the manifest's reconciler.
async fn apply(args: &BlockArgs, desired: &DesiredList) -> anyhow::Result<()> {
    let client = args.api.client()?;
    let listed = remote::observe_lists(&client, &desired.location)
        .await
        .with_context(|| format!("cannot read the lists of the {}", desired.location))?;
    let blocked: Vec<String> = args.ips.clone();
    let op = match find_list(desired, &listed) {
        None => Op::Create(ListWrite {
            name: desired.name.clone(),
            list_type: desired.list_type,
            description: Some(desired.description.clone()),
            additions: blocked,
            deletions: Vec::new(),
        }),
        Some(remote) if remote.list_type != ListType::Ip.as_str() => bail!(
            "the remote list {} is of type {}, not ip",
            remote.id,
            remote.list_type
        ),
        Some(remote) => {
            let additions: Vec<String> = blocked
                .into_iter()
                .filter(|value| !remote.entries.contains(value))
                .collect();
            if additions.is_empty() {
                outln!("{} already holds {}", remote.id, args.ips.join(", "));
                return Ok(());
            }
            Op::Update {
                id: remote.id.clone(),
                diffs: vec![FieldDiff {
                    field: "entries added",
                    before: Shown::Absent,
                    after: Shown::json(&additions),
                }],
                desired: ListWrite {
                    name: desired.name.clone(),
                    list_type: desired.list_type,
                    description: None,
                    additions,
                    deletions: Vec::new(),
                },
            }
        }
    };
    let change = Change::List(ListChange {
        address: desired.address.clone(),
        location: desired.location.clone(),
        name: desired.name.clone(),
        op,
    });
    let applied = remote::execute(&client, &change).await.with_context(|| {
        format!(
            "cannot update the {} list {:?}",
            desired.location, desired.name
        )
    })?;
    let id = applied.remote_id.unwrap_or_default();
    outln!(
        "blocked {} in list {id} of the {}",
        args.ips.join(", "),
        desired.location
    );
    Ok(())
}
