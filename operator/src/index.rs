//! Who depends on what: from a changed Secret or connection to the objects to reconcile again.
//! Pure functions over cached objects, so the watch mappers stay one line each.

use std::sync::Arc;

use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use crate::crd::{
    AgentAlert, ClusterSigSciConnection, ConnectionKind, ConnectionRef, Integration,
    SigSciConnection, SigSciList,
};

/// A connection, by kind and (for the namespaced kind) namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionKey {
    pub kind: ConnectionKind,
    pub namespace: Option<String>,
    pub name: String,
}

impl ConnectionKey {
    pub fn namespaced(namespace: &str, name: &str) -> ConnectionKey {
        ConnectionKey {
            kind: ConnectionKind::SigSciConnection,
            namespace: Some(namespace.to_string()),
            name: name.to_string(),
        }
    }

    pub fn cluster(name: &str) -> ConnectionKey {
        ConnectionKey {
            kind: ConnectionKind::ClusterSigSciConnection,
            namespace: None,
            name: name.to_string(),
        }
    }

    /// Whether an object in `namespace` with `reference` uses this connection.
    pub fn is_referenced_by(&self, namespace: Option<&str>, reference: &ConnectionRef) -> bool {
        reference.kind == self.kind
            && reference.name == self.name
            && match self.kind {
                ConnectionKind::SigSciConnection => namespace == self.namespace.as_deref(),
                ConnectionKind::ClusterSigSciConnection => true,
            }
    }
}

/// Connections whose credentials live in Secret `namespace/name`.
pub fn connections_using_secret(
    namespaced: &[Arc<SigSciConnection>],
    cluster: &[Arc<ClusterSigSciConnection>],
    namespace: &str,
    name: &str,
) -> Vec<ConnectionKey> {
    let local = namespaced
        .iter()
        .filter(|c| {
            c.namespace().as_deref() == Some(namespace)
                && c.spec.credentials_secret_ref.name == name
        })
        .map(|c| ConnectionKey::namespaced(namespace, &c.name_any()));
    let global = cluster
        .iter()
        .filter(|c| {
            c.spec.credentials_secret_ref.namespace.as_deref() == Some(namespace)
                && c.spec.credentials_secret_ref.name == name
        })
        .map(|c| ConnectionKey::cluster(&c.name_any()));
    local.chain(global).collect()
}

/// Kinds that reach the API only through their connection (no Secrets of their own).
pub trait UsesConnection: Resource<DynamicType = ()> {
    fn connection_ref(&self) -> &ConnectionRef;
}

impl UsesConnection for AgentAlert {
    fn connection_ref(&self) -> &ConnectionRef {
        &self.spec.connection_ref
    }
}

impl UsesConnection for SigSciList {
    fn connection_ref(&self) -> &ConnectionRef {
        &self.spec.connection_ref
    }
}

/// Objects (alerts, lists) that use any of `connections`.
pub fn using_connections<K: UsesConnection>(
    objects: &[Arc<K>],
    connections: &[ConnectionKey],
) -> Vec<ObjectRef<K>> {
    objects
        .iter()
        .filter(|object| {
            let namespace = object.namespace();
            connections
                .iter()
                .any(|key| key.is_referenced_by(namespace.as_deref(), object.connection_ref()))
        })
        .map(|object| ObjectRef::from_obj(object.as_ref()))
        .collect()
}

/// Integrations that use any of `connections`, or read Secret `secret` (namespace, name) directly.
pub fn integrations_using(
    integrations: &[Arc<Integration>],
    connections: &[ConnectionKey],
    secret: Option<(&str, &str)>,
) -> Vec<ObjectRef<Integration>> {
    integrations
        .iter()
        .filter(|integration| {
            let namespace = integration.namespace();
            let via_connection = connections.iter().any(|key| {
                key.is_referenced_by(namespace.as_deref(), &integration.spec.connection_ref)
            });
            let reads_secret = secret.is_some_and(|(secret_namespace, secret_name)| {
                namespace.as_deref() == Some(secret_namespace)
                    && integration
                        .spec
                        .secret_refs()
                        .iter()
                        .any(|r| r.name == secret_name)
            });
            via_connection || reads_secret
        })
        .map(|integration| ObjectRef::from_obj(integration.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sigsci_config::{IntegrationScope, IntegrationType, Metric, ThresholdOperator};

    use super::*;
    use crate::crd::integration::{EventName, ValueSource};
    use crate::crd::{
        AgentAlertSpec, ClusterSigSciConnectionSpec, CredentialsSecretRef, IntegrationSpec,
        SecretKeyRef, SigSciConnectionSpec,
    };

    fn secret_ref(name: &str, namespace: Option<&str>) -> CredentialsSecretRef {
        CredentialsSecretRef {
            name: name.into(),
            namespace: namespace.map(str::to_string),
            email_key: "email".into(),
            token_key: "token".into(),
        }
    }

    fn mk_connection(namespace: &str, name: &str, secret: &str) -> Arc<SigSciConnection> {
        let mut connection = SigSciConnection::new(
            name,
            SigSciConnectionSpec {
                corp: "corp".into(),
                api_url: "http://127.0.0.1:1".into(),
                credentials_secret_ref: secret_ref(secret, None),
            },
        );
        connection.metadata.namespace = Some(namespace.into());
        Arc::new(connection)
    }

    fn mk_cluster_connection(
        name: &str,
        secret_namespace: &str,
        secret: &str,
    ) -> Arc<ClusterSigSciConnection> {
        Arc::new(ClusterSigSciConnection::new(
            name,
            ClusterSigSciConnectionSpec {
                corp: "corp".into(),
                api_url: "http://127.0.0.1:1".into(),
                credentials_secret_ref: secret_ref(secret, Some(secret_namespace)),
            },
        ))
    }

    fn mk_alert(
        namespace: &str,
        name: &str,
        kind: ConnectionKind,
        connection: &str,
    ) -> Arc<AgentAlert> {
        let mut alert = AgentAlert::new(
            name,
            AgentAlertSpec {
                connection_ref: ConnectionRef {
                    kind,
                    name: connection.into(),
                },
                site: "site-1".into(),
                metric: Metric::AverageRps,
                operator: ThresholdOperator::LessThan,
                threshold: 1,
                interval: 5,
                enabled: true,
                skip_notifications: false,
                deletion_policy: Default::default(),
            },
        );
        alert.metadata.namespace = Some(namespace.into());
        Arc::new(alert)
    }

    fn mk_integration(
        namespace: &str,
        name: &str,
        connection: &str,
        url_secret: &str,
    ) -> Arc<Integration> {
        let mut integration = Integration::new(
            name,
            IntegrationSpec {
                connection_ref: ConnectionRef {
                    kind: ConnectionKind::SigSciConnection,
                    name: connection.into(),
                },
                scope: IntegrationScope::Site,
                site: Some("site-1".into()),
                kind: IntegrationType::Slack,
                url: None,
                url_from: Some(ValueSource {
                    secret_key_ref: SecretKeyRef {
                        name: url_secret.into(),
                        key: "url".into(),
                    },
                }),
                events: vec![EventName("flag".into())],
                fields: BTreeMap::new(),
                deletion_policy: Default::default(),
            },
        );
        integration.metadata.namespace = Some(namespace.into());
        Arc::new(integration)
    }

    fn names<K: kube::Resource>(refs: Vec<ObjectRef<K>>) -> Vec<String>
    where
        K::DynamicType: Default,
    {
        refs.into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn secret_change_reaches_alerts_through_both_connection_kinds() {
        let namespaced = [
            mk_connection("a", "conn", "creds"),
            mk_connection("b", "conn", "creds"),
        ];
        let cluster = [
            mk_cluster_connection("shared", "a", "creds"),
            mk_cluster_connection("other", "a", "else"),
        ];
        let keys = connections_using_secret(&namespaced, &cluster, "a", "creds");
        assert_eq!(
            keys,
            vec![
                ConnectionKey::namespaced("a", "conn"),
                ConnectionKey::cluster("shared")
            ]
        );

        let alerts = [
            mk_alert("a", "local", ConnectionKind::SigSciConnection, "conn"),
            mk_alert(
                "b",
                "same-name-other-namespace",
                ConnectionKind::SigSciConnection,
                "conn",
            ),
            mk_alert(
                "c",
                "via-cluster",
                ConnectionKind::ClusterSigSciConnection,
                "shared",
            ),
            mk_alert(
                "c",
                "unrelated",
                ConnectionKind::ClusterSigSciConnection,
                "other",
            ),
        ];
        assert_eq!(
            names(using_connections(&alerts, &keys)),
            vec!["local", "via-cluster"]
        );
    }

    #[test]
    fn integrations_follow_their_own_secret_refs() {
        let integrations = [
            mk_integration("a", "reads-hook", "conn", "hook"),
            mk_integration("b", "other-namespace", "conn", "hook"),
            mk_integration("a", "other-secret", "conn", "else"),
        ];
        assert_eq!(
            names(integrations_using(&integrations, &[], Some(("a", "hook")))),
            vec!["reads-hook"]
        );
        let by_connection = integrations_using(
            &integrations,
            &[ConnectionKey::namespaced("b", "conn")],
            None,
        );
        assert_eq!(names(by_connection), vec!["other-namespace"]);
    }
}
