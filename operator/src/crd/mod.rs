//! The custom resources of group `sigsci-kit.io`, version `v1alpha1`.

pub mod agent_alert;
pub mod common;
pub mod connection;
pub mod integration;

pub use agent_alert::{AgentAlert, AgentAlertSpec};
pub use common::{ConnectionKind, ConnectionRef, ConnectionStatus, SecretKeyRef, SyncStatus};
pub use connection::{
    ClusterSigSciConnection, ClusterSigSciConnectionSpec, CredentialsSecretRef, SigSciConnection,
    SigSciConnectionSpec,
};
pub use integration::{Integration, IntegrationSpec};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD, in the order `crdgen` writes them.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        SigSciConnection::crd(),
        ClusterSigSciConnection::crd(),
        AgentAlert::crd(),
        Integration::crd(),
    ]
}

#[cfg(test)]
mod tests {
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
        // corp on both connection kinds, site on AgentAlert and Integration.
        assert_eq!(short_names.len(), 4, "{found:?}");
        for (property, rule) in short_names {
            assert_eq!(rule, &expected, "{property}");
        }
    }
}
