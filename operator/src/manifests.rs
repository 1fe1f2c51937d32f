//! The same YAML manifests the operator reconciles, read from a directory without a cluster
//! (for `sigsci-kit config plan|apply`), and turned into the shared plan's desired state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use sigsci_config::managed::site_of;
use sigsci_config::{
    Address, Claimant, DesiredAlert, DesiredState, Managed, ManagedObject, ManagementPolicy,
    ObservedState, Reads, Sensitive, check_claims,
};

use crate::crd::agent_alert::SiteSelection;
use crate::crd::{
    AgentAlert, ClusterSigSciConnection, ConnectionKind, ConnectionRef, Integration,
    SigSciConnection, SigSciList,
};
use crate::remote;

const API_VERSION: &str = "sigsci-kit.io/v1alpha1";

/// Causes are part of the message, not also a `source()` that `{:#}` would print again.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: document {document}: {message}")]
    Parse {
        path: PathBuf,
        document: usize,
        message: String,
    },
    /// Fields the CRD schema does not declare, as `kubectl apply` with strict field validation
    /// refuses them (dotted paths, e.g. `spec.treshold`).
    #[error("{path}: document {document}: {}", unknown_field_list(.fields))]
    UnknownFields {
        path: PathBuf,
        document: usize,
        fields: Vec<String>,
    },
    #[error("{object}: {kind} {name} is not among the manifests")]
    MissingConnection {
        object: String,
        kind: &'static str,
        name: String,
    },
    #[error("{object}: Secret {name} key {key} not found: add the Secret manifest or set {env}")]
    MissingSecret {
        object: String,
        name: String,
        key: String,
        env: String,
    },
    #[error("invalid manifests: {0}")]
    Invalid(sigsci_config::Problems),
    /// Two declarations of one remote object (see [`sigsci_config::claims`]).
    #[error("conflicting manifests, nothing planned or applied: {0}")]
    Conflict(sigsci_config::Problems),
    /// `sites: all` needs the corp's site list, which the caller reads (see [`all_sites_targets`]).
    #[error(
        "{object}: the sites of {connection} were not listed, so `sites: all` cannot be expanded"
    )]
    SitesNotListed { object: String, connection: String },
    #[error("{address} is declared twice: in {} and in {}", .first.display(), .second.display())]
    Duplicate {
        // Boxed: every `Result` of this module carries the error's size.
        address: Box<Address>,
        first: PathBuf,
        second: PathBuf,
    },
}

/// Every object of interest found in a directory tree; other kinds are skipped.
#[derive(Clone, Debug, Default)]
pub struct Manifests {
    pub connections: Vec<SigSciConnection>,
    pub cluster_connections: Vec<ClusterSigSciConnection>,
    pub alerts: Vec<AgentAlert>,
    pub integrations: Vec<Integration>,
    pub lists: Vec<SigSciList>,
    pub secrets: Vec<Secret>,
    /// The file each AgentAlert, Integration and SigSciList came from, for messages.
    pub origins: BTreeMap<Address, PathBuf>,
}

impl Manifests {
    /// Where `address` is declared, as given on the command line.
    pub fn origin(&self, address: &Address) -> Option<String> {
        self.origins
            .get(&address.object())
            .map(|path| path.display().to_string())
    }

    /// Remember the file of one declaration; the same object twice is an error, as one
    /// Kubernetes object cannot have two specs.
    fn declared_in<K: kube::Resource>(
        &mut self,
        kind: &str,
        object: &K,
        path: &Path,
    ) -> Result<(), ManifestError> {
        let meta = object.meta();
        let address = Address::new(
            kind,
            meta.namespace.as_deref(),
            meta.name.clone().unwrap_or_default(),
        );
        match self.origins.get(&address) {
            Some(first) => Err(ManifestError::Duplicate {
                address: Box::new(address),
                first: first.clone(),
                second: path.to_path_buf(),
            }),
            None => {
                self.origins.insert(address, path.to_path_buf());
                Ok(())
            }
        }
    }
}

/// Read every `*.yaml` / `*.yml` under `dir` (sorted, recursively). Objects without a namespace
/// get `default_namespace`, as `kubectl apply -n` would.
pub fn load_dir(dir: &Path, default_namespace: &str) -> Result<Manifests, ManifestError> {
    let mut files = Vec::new();
    collect_yaml_files(dir, &mut files)?;
    files.sort();
    let mut manifests = Manifests::default();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|cause| ManifestError::Read {
            path: path.clone(),
            cause,
        })?;
        load_str(&text, &path, default_namespace, &mut manifests)?;
    }
    Ok(manifests)
}

fn collect_yaml_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
    let read_error = |cause| ManifestError::Read {
        path: dir.to_path_buf(),
        cause,
    };
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        if path.is_dir() {
            collect_yaml_files(&path, files)?;
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            files.push(path);
        }
    }
    Ok(())
}

/// Add the documents of one YAML stream.
pub fn load_str(
    text: &str,
    path: &Path,
    default_namespace: &str,
    manifests: &mut Manifests,
) -> Result<(), ManifestError> {
    let crds = crate::crd::all();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let parse_error = |message: String| ManifestError::Parse {
            path: path.to_path_buf(),
            document: index + 1,
            message,
        };
        let value: serde_yaml::Value =
            serde::Deserialize::deserialize(document).map_err(|e| parse_error(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let api_version = value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let kind = value
            .get("kind")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        if api_version == API_VERSION
            && let Some(crd) = crds.iter().find(|crd| crd.spec.names.kind == kind)
        {
            let fields = undeclared_fields(&value, crd);
            if !fields.is_empty() {
                return Err(ManifestError::UnknownFields {
                    path: path.to_path_buf(),
                    document: index + 1,
                    fields,
                });
            }
        }
        match (api_version, kind) {
            (API_VERSION, "SigSciConnection") => {
                manifests
                    .connections
                    .push(namespaced(typed(value, &parse_error)?, default_namespace));
            }
            (API_VERSION, "ClusterSigSciConnection") => manifests
                .cluster_connections
                .push(typed(value, &parse_error)?),
            (API_VERSION, "AgentAlert") => {
                let alert: AgentAlert = namespaced(typed(value, &parse_error)?, default_namespace);
                manifests.declared_in("AgentAlert", &alert, path)?;
                manifests.alerts.push(alert);
            }
            (API_VERSION, "Integration") => {
                let integration: Integration =
                    namespaced(typed(value, &parse_error)?, default_namespace);
                manifests.declared_in("Integration", &integration, path)?;
                manifests.integrations.push(integration);
            }
            (API_VERSION, "SigSciList") => {
                let list: SigSciList = namespaced(typed(value, &parse_error)?, default_namespace);
                manifests.declared_in("SigSciList", &list, path)?;
                manifests.lists.push(list);
            }
            ("v1", "Secret") => manifests
                .secrets
                .push(namespaced(typed(value, &parse_error)?, default_namespace)),
            (API_VERSION, other) => {
                return Err(parse_error(format!(
                    "unknown kind {other:?} in {API_VERSION}"
                )));
            }
            _ => {
                tracing::debug!(path = %path.display(), kind, "skipping a manifest of another kind")
            }
        }
    }
    Ok(())
}

/// Paths of the fields the CRD's schema does not declare. serde would drop them silently, so a
/// typo such as `treshold` would quietly plan the default.
fn undeclared_fields(object: &serde_yaml::Value, crd: &CustomResourceDefinition) -> Vec<String> {
    let mut fields = Vec::new();
    let schema = crd
        .spec
        .versions
        .iter()
        .find(|version| API_VERSION.ends_with(&format!("/{}", version.name)))
        .and_then(|version| version.schema.as_ref())
        .and_then(|validation| validation.open_api_v3_schema.as_ref());
    // The generated schemas leave the fields every object has implicit.
    let implicit = ["apiVersion", "kind", "metadata"];
    if let (Some(schema), serde_yaml::Value::Mapping(top)) = (schema, object) {
        for (key, child) in top {
            match key.as_str() {
                Some(key) if implicit.contains(&key) => {}
                Some(key) => match schema.properties.as_ref().and_then(|p| p.get(key)) {
                    Some(child_schema) => collect_undeclared(child, child_schema, key, &mut fields),
                    None => fields.push(key.to_string()),
                },
                None => fields.push(format!("{key:?}")),
            }
        }
    }
    fields
}

fn collect_undeclared(
    value: &serde_yaml::Value,
    schema: &JSONSchemaProps,
    path: &str,
    fields: &mut Vec<String>,
) {
    if schema.x_kubernetes_preserve_unknown_fields == Some(true) {
        return;
    }
    let child_path = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        serde_yaml::Value::Mapping(map) => {
            for (key, child) in map {
                let key = key
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{key:?}"));
                let declared = schema
                    .properties
                    .as_ref()
                    .and_then(|properties| properties.get(&key));
                if let Some(child_schema) = declared {
                    collect_undeclared(child, child_schema, &child_path(&key), fields);
                    continue;
                }
                match &schema.additional_properties {
                    Some(JSONSchemaPropsOrBool::Schema(child_schema)) => {
                        collect_undeclared(child, child_schema, &child_path(&key), fields);
                    }
                    Some(JSONSchemaPropsOrBool::Bool(true)) => {}
                    // An object without declared properties (metadata) is the API server's to check.
                    _ if schema.properties.is_none() => {}
                    _ => fields.push(child_path(&key)),
                }
            }
        }
        serde_yaml::Value::Sequence(items) => {
            if let Some(JSONSchemaPropsOrArray::Schema(item_schema)) = &schema.items {
                for (index, item) in items.iter().enumerate() {
                    collect_undeclared(item, item_schema, &format!("{path}[{index}]"), fields);
                }
            }
        }
        _ => {}
    }
}

/// In the API server's words: `unknown field "spec.a", unknown field "spec.b"`.
fn unknown_field_list(fields: &[String]) -> String {
    fields
        .iter()
        .map(|field| format!("unknown field {field:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn typed<T: DeserializeOwned>(
    value: serde_yaml::Value,
    parse_error: &impl Fn(String) -> ManifestError,
) -> Result<T, ManifestError> {
    serde_yaml::from_value(value).map_err(|e| parse_error(e.to_string()))
}

fn namespaced<K: kube::Resource>(mut object: K, default_namespace: &str) -> K {
    if object.meta().namespace.is_none() {
        object.meta_mut().namespace = Some(default_namespace.to_string());
    }
    object
}

/// Secret values for the CLI: Secret manifests first, then the environment variable
/// `SIGSCI_KIT_SECRET_<NAME>_<KEY>` (upper case, other characters as `_`).
pub struct SecretLookup<'a> {
    secrets: &'a [Secret],
    env: EnvLookup<'a>,
}

/// Reads one environment variable (injected, so tests need not touch the process environment).
type EnvLookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

impl<'a> SecretLookup<'a> {
    pub fn new(
        secrets: &'a [Secret],
        env: impl Fn(&str) -> Option<String> + 'a,
    ) -> SecretLookup<'a> {
        SecretLookup {
            secrets,
            env: Box::new(env),
        }
    }

    pub fn env_name(name: &str, key: &str) -> String {
        let normal = |text: &str| -> String {
            text.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        format!("SIGSCI_KIT_SECRET_{}_{}", normal(name), normal(key))
    }

    pub fn get(&self, namespace: &str, name: &str, key: &str) -> Option<Sensitive> {
        let from_manifest = self
            .secrets
            .iter()
            .filter(|secret| {
                secret.namespace().as_deref() == Some(namespace) && secret.name_any() == name
            })
            .find_map(|secret| secret_manifest_value(secret, key));
        from_manifest
            .or_else(|| (self.env)(&Self::env_name(name, key)))
            .map(|value| Sensitive::new(value.trim()))
    }
}

/// `stringData` wins over `data`, as the API server merges them.
fn secret_manifest_value(secret: &Secret, key: &str) -> Option<String> {
    if let Some(value) = secret.string_data.as_ref().and_then(|data| data.get(key)) {
        return Some(value.clone());
    }
    // `data` arrives base64-decoded (k8s-openapi's ByteString).
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// The API target of one connection manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `SigSciConnection ns/name` or `ClusterSigSciConnection name`.
    pub connection: String,
    pub corp: String,
    pub api_url: String,
}

/// The declarations of one connection.
#[derive(Clone, Debug)]
pub struct ConnectionGroup {
    pub target: Target,
    pub desired: DesiredState,
}

/// The site short names of each connection's corp, by [`Target::connection`]: what
/// `sites: all` expands to.
pub type CorpSites = BTreeMap<String, Vec<String>>;

/// Exactly one of `site` and `sites`, and a well-formed list.
fn check_alert_sites(alert: &AgentAlert, address: &str) -> Result<(), ManifestError> {
    let mut problems = sigsci_config::Problems::default();
    if let Err(found) = alert.spec.check_sites() {
        for problem in found.0 {
            problems.push(format!("{address} spec.{}", problem.field), problem.message);
        }
    }
    problems.into_result().map_err(ManifestError::Invalid)
}

/// The connections whose corp's site list `sites: all` needs, once each.
pub fn all_sites_targets(manifests: &Manifests) -> Result<Vec<Target>, ManifestError> {
    let mut targets: Vec<Target> = Vec::new();
    for alert in &manifests.alerts {
        if alert.spec.sites == Some(SiteSelection::All) {
            let namespace = alert.namespace().unwrap_or_default();
            let address = format!("AgentAlert {namespace}/{}", alert.name_any());
            let target = find_target(manifests, &namespace, &alert.spec.connection_ref, &address)?;
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
    }
    Ok(targets)
}

/// The declarations of one AgentAlert: on its `site`, or one per site of `sites` (the corp's
/// sites for `all`, from `corp_sites`), each with its own address.
fn alert_declarations(
    alert: &AgentAlert,
    target: &Target,
    corp_sites: &CorpSites,
    address: &str,
) -> Result<Vec<DesiredAlert>, ManifestError> {
    check_alert_sites(alert, address)?;
    let namespace = alert.namespace().unwrap_or_default();
    let desired = alert.desired(&namespace, &alert.name_any(), None);
    match &alert.spec.sites {
        None => Ok(vec![desired]),
        Some(SiteSelection::Listed(sites)) => Ok(desired.on_sites(sites)),
        Some(SiteSelection::All) => corp_sites
            .get(&target.connection)
            .map(|sites| desired.on_sites(sites))
            .ok_or_else(|| ManifestError::SitesNotListed {
                object: address.to_string(),
                connection: target.connection.clone(),
            }),
    }
}

/// Group the declarations by the connection they use, resolving Secret values and expanding
/// `sites` (`all` through `corp_sites`).
pub fn desired_by_connection(
    manifests: &Manifests,
    secrets: &SecretLookup<'_>,
    corp_sites: &CorpSites,
) -> Result<Vec<ConnectionGroup>, ManifestError> {
    let mut groups: BTreeMap<String, ConnectionGroup> = BTreeMap::new();
    for alert in &manifests.alerts {
        let namespace = alert.namespace().unwrap_or_default();
        let address = format!("AgentAlert {namespace}/{}", alert.name_any());
        let target = find_target(manifests, &namespace, &alert.spec.connection_ref, &address)?;
        let declared = alert_declarations(alert, &target, corp_sites, &address)?;
        group(&mut groups, target).alerts.extend(declared);
    }
    for integration in &manifests.integrations {
        let namespace = integration.namespace().unwrap_or_default();
        let address = format!("Integration {namespace}/{}", integration.name_any());
        let target = find_target(
            manifests,
            &namespace,
            &integration.spec.connection_ref,
            &address,
        )?;
        let mut values = BTreeMap::new();
        for reference in integration.spec.secret_refs() {
            let value = secrets
                .get(&namespace, &reference.name, &reference.key)
                .ok_or_else(|| ManifestError::MissingSecret {
                    object: address.clone(),
                    name: reference.name.clone(),
                    key: reference.key.clone(),
                    env: SecretLookup::env_name(&reference.name, &reference.key),
                })?;
            values.insert((reference.name.clone(), reference.key.clone()), value);
        }
        let desired = integration
            .desired(&namespace, &integration.name_any(), None, &values)
            .map_err(|unresolved| ManifestError::MissingSecret {
                object: address.clone(),
                env: SecretLookup::env_name(&unresolved.name, &unresolved.key),
                name: unresolved.name,
                key: unresolved.key,
            })?;
        group(&mut groups, target).integrations.push(desired);
    }
    for list in &manifests.lists {
        let namespace = list.namespace().unwrap_or_default();
        let address = format!("SigSciList {namespace}/{}", list.name_any());
        let target = find_target(manifests, &namespace, &list.spec.connection_ref, &address)?;
        let desired = list.desired(&namespace, &list.name_any(), None);
        group(&mut groups, target).lists.push(desired);
    }
    let groups: Vec<ConnectionGroup> = groups.into_values().collect();
    for group in &groups {
        group.desired.validate().map_err(ManifestError::Invalid)?;
    }
    let claimants: Vec<Claimant<'_>> = groups
        .iter()
        .map(|group| Claimant {
            api_url: &group.target.api_url,
            corp: &group.target.corp,
            desired: &group.desired,
        })
        .collect();
    check_claims(&claimants, |address| manifests.origin(address))
        .map_err(ManifestError::Conflict)?;
    Ok(groups)
}

fn group(groups: &mut BTreeMap<String, ConnectionGroup>, target: Target) -> &mut DesiredState {
    &mut groups
        .entry(target.connection.clone())
        .or_insert_with(|| ConnectionGroup {
            target,
            desired: DesiredState::default(),
        })
        .desired
}

fn find_target(
    manifests: &Manifests,
    namespace: &str,
    reference: &ConnectionRef,
    object: &str,
) -> Result<Target, ManifestError> {
    let missing = || ManifestError::MissingConnection {
        object: object.to_string(),
        kind: reference.kind.as_str(),
        name: reference.name.clone(),
    };
    match reference.kind {
        ConnectionKind::SigSciConnection => manifests
            .connections
            .iter()
            .find(|c| c.namespace().as_deref() == Some(namespace) && c.name_any() == reference.name)
            .map(|c| Target {
                connection: format!("SigSciConnection {namespace}/{}", reference.name),
                corp: c.spec.corp.clone(),
                api_url: c.spec.api_url.clone(),
            })
            .ok_or_else(missing),
        ConnectionKind::ClusterSigSciConnection => manifests
            .cluster_connections
            .iter()
            .find(|c| c.name_any() == reference.name)
            .map(|c| Target {
                connection: format!("ClusterSigSciConnection {}", reference.name),
                corp: c.spec.corp.clone(),
                api_url: c.spec.api_url.clone(),
            })
            .ok_or_else(missing),
    }
}

/// Read what a plan needs ([`DesiredState::reads`], plus where recorded objects live):
/// alerts, integrations and lists per site, the corp's integrations and lists. Write-only
/// integration fields are unknowable here.
pub async fn observe(client: &sigsci::Client, reads: &Reads) -> sigsci::Result<ObservedState> {
    let mut observed = ObservedState::default();
    for site in &reads.alert_sites {
        observed
            .alerts
            .insert(site.clone(), remote::observe_alerts(client, site).await?);
    }
    for location in &reads.integration_locations {
        let listed = remote::observe_integrations(client, location, |_| None).await?;
        observed.integrations.insert(location.clone(), listed);
    }
    for location in &reads.list_locations {
        let listed = remote::observe_lists(client, location).await?;
        observed.lists.insert(location.clone(), listed);
    }
    Ok(observed)
}

/// What `config apply` records for the declarations of one connection: each object's remote
/// id (`ids`, by declaration) with the deletion policy its manifest gives, so a later
/// `--prune` can remove it once no manifest declares it. `ObserveOnly` objects are not
/// managed, so never recorded.
pub fn records(
    manifests: &Manifests,
    group: &ConnectionGroup,
    ids: &BTreeMap<Address, String>,
) -> Vec<Managed> {
    let record = |address: &Address, remote_id: &String, object: ManagedObject| Managed {
        api_url: group.target.api_url.clone(),
        corp: group.target.corp.clone(),
        connection: group.target.connection.clone(),
        namespace: address.namespace.clone(),
        name: address.name.clone(),
        file: manifests.origin(address),
        remote_id: remote_id.clone(),
        object,
    };
    let is = |address: &Address, meta: &kube::api::ObjectMeta| {
        meta.namespace == address.namespace && meta.name.as_deref() == Some(address.name.as_str())
    };
    let mut recorded = Vec::new();
    for alert in &group.desired.alerts {
        let manifest = manifests
            .alerts
            .iter()
            .find(|a| is(&alert.address, a.meta()));
        if let (Some(manifest), Some(id)) = (manifest, ids.get(&alert.address))
            && alert.management == ManagementPolicy::Full
        {
            recorded.push(record(
                &alert.address,
                id,
                ManagedObject::AgentAlert {
                    site: alert.site.clone(),
                    metric: alert.metric,
                    deletion_policy: manifest.spec.deletion_policy,
                    per_site: alert.address.site.is_some(),
                },
            ));
        }
    }
    for integration in &group.desired.integrations {
        let manifest = manifests
            .integrations
            .iter()
            .find(|i| is(&integration.address, i.meta()));
        if let (Some(manifest), Some(id)) = (manifest, ids.get(&integration.address))
            && integration.management == ManagementPolicy::Full
        {
            recorded.push(record(
                &integration.address,
                id,
                ManagedObject::Integration {
                    site: site_of(&integration.location),
                    integration_type: integration.kind.as_str().to_string(),
                    deletion_policy: manifest.spec.deletion_policy,
                },
            ));
        }
    }
    for list in &group.desired.lists {
        let manifest = manifests.lists.iter().find(|l| is(&list.address, l.meta()));
        if let (Some(manifest), Some(id)) = (manifest, ids.get(&list.address))
            && list.management == ManagementPolicy::Full
        {
            recorded.push(record(
                &list.address,
                id,
                ManagedObject::SigSciList {
                    site: site_of(&list.location),
                    list_name: list.name.clone(),
                    deletion_policy: manifest.spec.deletion_policy,
                },
            ));
        }
    }
    recorded
}
