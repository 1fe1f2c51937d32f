//! The custom resources of group `sigsci-kit.io`, version `v1alpha1`.

pub mod agent_alert;
pub mod common;
pub mod connection;
pub mod integration;
pub mod list;

pub use agent_alert::{AgentAlert, AgentAlertSpec};
pub use common::{
    ConnectionKind, ConnectionRef, ConnectionStatus, DriftEntry, ManagedStatus, SecretKeyRef,
    SyncStatus,
};
pub use connection::{
    ClusterSigSciConnection, ClusterSigSciConnectionSpec, CredentialsSecretRef, SigSciConnection,
    SigSciConnectionSpec,
};
pub use integration::{Integration, IntegrationSpec};
pub use list::{ListEntry, ListStatus, SigSciList, SigSciListSpec};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

/// Every CRD, in the order `crdgen` writes them.
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        SigSciConnection::crd(),
        ClusterSigSciConnection::crd(),
        AgentAlert::crd(),
        Integration::crd(),
        SigSciList::crd(),
    ];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                unwrap_descriptions(schema);
            }
        }
    }
    crds
}

/// Doc comments wrap at the source's line width; `kubectl explain` wraps on its own, so the
/// descriptions are single lines (paragraphs joined by a space).
fn unwrap_descriptions(schema: &mut JSONSchemaProps) {
    if let Some(description) = schema.description.as_mut() {
        *description = description.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    let children = schema
        .properties
        .iter_mut()
        .flat_map(|properties| properties.values_mut())
        .chain(match schema.items.as_mut() {
            Some(JSONSchemaPropsOrArray::Schema(item)) => vec![item.as_mut()],
            Some(JSONSchemaPropsOrArray::Schemas(items)) => items.iter_mut().collect(),
            None => Vec::new(),
        })
        .chain(match schema.additional_properties.as_mut() {
            Some(JSONSchemaPropsOrBool::Schema(value)) => Some(value.as_mut()),
            _ => None,
        })
        .chain(schema.any_of.iter_mut().flatten())
        .chain(schema.one_of.iter_mut().flatten())
        .chain(schema.all_of.iter_mut().flatten());
    children.for_each(unwrap_descriptions);
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use serde_json::Value;

    /// Every `x-kubernetes-validations` rule of a schema, with the property it sits on.
    fn rules(schema: &Value, property: &str, found: &mut Vec<(String, String)>) {
        match schema {
            Value::Object(map) => {
                if let Some(Value::Array(validations)) = map.get("x-kubernetes-validations") {
                    for validation in validations {
                        if let Some(rule) = validation["rule"].as_str() {
                            found.push((property.to_string(), rule.to_string()));
                        }
                    }
                }
                if let Some(Value::Object(properties)) = map.get("properties") {
                    for (name, child) in properties {
                        rules(child, name, found);
                    }
                }
                for (key, child) in map {
                    if key != "properties" {
                        rules(child, property, found);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| rules(item, property, found)),
            _ => {}
        }
    }

    /// Keys of every schema object, so a test can look for one anywhere in a CRD.
    fn keys(schema: &Value, found: &mut Vec<String>) {
        match schema {
            Value::Object(map) => {
                for (key, child) in map {
                    found.push(key.clone());
                    keys(child, found);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| keys(item, found)),
            _ => {}
        }
    }

    /// The API server drops (or, with strict field validation, refuses) unknown fields only where
    /// the schema does not preserve them; nothing in these kinds is free-form but AgentAlert's
    /// `sites` (`all` or a list: no structural type says that; its junctors check the value).
    #[test]
    fn no_schema_preserves_unknown_fields() {
        for crd in super::all() {
            let mut schema = serde_json::to_value(&crd.spec).unwrap_or(Value::Null);
            if crd.spec.names.kind == "AgentAlert" {
                let spec = &mut schema["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
                    ["properties"];
                let sites = spec.as_object_mut().and_then(|spec| spec.remove("sites"));
                assert!(sites.is_some_and(|sites| sites["anyOf"].is_array()));
            }
            let mut found = Vec::new();
            keys(&schema, &mut found);
            assert!(!found.is_empty(), "{schema}");
            assert!(
                !found
                    .iter()
                    .any(|key| key == "x-kubernetes-preserve-unknown-fields"),
                "{}: {schema}",
                crd.spec.names.kind
            );
        }
    }

    /// Every field `kubectl explain` shows has a description, on one line.
    fn described(schema: &Value, path: &str, missing: &mut Vec<String>) {
        let Value::Object(map) = schema else { return };
        match map.get("description").and_then(Value::as_str) {
            None if !path.ends_with(".metadata") => missing.push(format!("{path}: none")),
            Some(text) if text.contains('\n') || text.trim().is_empty() => {
                missing.push(format!("{path}: {text:?}"))
            }
            _ => {}
        }
        if let Some(Value::Object(properties)) = map.get("properties") {
            for (name, child) in properties {
                described(child, &format!("{path}.{name}"), missing);
            }
        }
        if let Some(items) = map.get("items") {
            described(items, &format!("{path}[]"), missing);
        }
    }

    #[test]
    fn every_field_has_a_one_line_description() {
        for crd in super::all() {
            for version in &crd.spec.versions {
                let schema = version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
                    .unwrap_or(Value::Null);
                let mut missing = Vec::new();
                described(&schema, &crd.spec.names.kind, &mut missing);
                assert!(missing.is_empty(), "{missing:#?}");
            }
        }
    }

    /// The events rule lists exactly what `sigsci_config` validates, per scope.
    #[test]
    fn events_rule_states_the_documented_events() {
        let schema = serde_json::to_value(super::Integration::crd()).unwrap_or(Value::Null);
        let mut found = Vec::new();
        rules(&schema, "", &mut found);
        let quoted = |events: &[&str]| {
            let names: Vec<String> = events.iter().map(|e| format!("'{e}'")).collect();
            format!("[{}]", names.join(", "))
        };
        let expected = format!(
            "self.events.all(e, e in (self.scope == 'Corp' ? {} : {}))",
            quoted(&sigsci_config::model::CORP_EVENTS),
            quoted(&sigsci_config::model::SITE_EVENTS)
        );
        assert!(
            found.iter().any(|(_, rule)| rule == &expected),
            "{expected} not in {found:?}"
        );
    }

    #[test]
    fn short_name_rules_state_the_clients_pattern() {
        let expected = format!("self.matches('{}')", sigsci::SHORT_NAME_PATTERN);
        let mut found = Vec::new();
        for crd in super::all() {
            let schema = serde_json::to_value(&crd).unwrap_or(Value::Null);
            rules(&schema, "", &mut found);
        }
        let short_names: Vec<_> = found
            .iter()
            .filter(|(property, _)| property == "site" || property == "corp")
            .filter(|(_, rule)| rule.starts_with("self.matches("))
            .collect();
        // corp on both connection kinds, site on AgentAlert, Integration and SigSciList.
        assert_eq!(short_names.len(), 5, "{found:?}");
        for (property, rule) in short_names {
            assert_eq!(rule, &expected, "{property}");
        }
    }
}
