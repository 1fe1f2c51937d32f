//! Who depends on what: from a changed Secret or connection to the objects to reconcile again.
//! Pure functions over cached objects, so the watch mappers stay one line each.

use std::sync::Arc;
use std::time::Duration;

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

/// Where in the resync period an object comes due: the same for every object of one connection
/// and site (read from the object as JSON, so any kind with `spec.connectionRef` and
/// `spec.site` fits; objects without a site share their connection's slot).
pub fn resync_slot<K: Resource + serde::Serialize>(object: &K) -> u64 {
    let json = serde_json::to_value(object).unwrap_or_default();
    let spec = &json["spec"];
    let reference = &spec["connectionRef"];
    let kind = reference["kind"].as_str().unwrap_or_default();
    // A namespaced connection of the same name in another namespace is another connection.
    let namespace = match kind {
        "ClusterSigSciConnection" => String::new(),
        _ => object.meta().namespace.clone().unwrap_or_default(),
    };
    let name = reference["name"].as_str().unwrap_or_default();
    let site = spec["site"].as_str().unwrap_or_default();
    fnv1a(&[kind, &namespace, name, site])
}

/// From `now` (milliseconds since the epoch) to the next time the period reaches `slot`; a full
/// period when it is there now. Wall-clock based, so slots survive a restart.
pub fn until_slot(slot: u64, now: i64, period: Duration) -> Duration {
    let period = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
    let phase = slot % period;
    // rem_euclid of an i64 by a positive period fits in u64.
    let position = u64::try_from(i128::from(now).rem_euclid(i128::from(period))).unwrap_or(0);
    let delay = (phase + period - position) % period;
    Duration::from_millis(if delay == 0 { period } else { delay })
}

/// A hash that stays the same across builds and restarts (std's may not).
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ClusterSigSciConnectionSpec, CredentialsSecretRef, SigSciConnectionSpec};

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
        let alert = serde_json::from_value(serde_json::json!({
            "apiVersion": "sigsci-kit.io/v1alpha1",
            "kind": "AgentAlert",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "connectionRef": {"kind": kind.as_str(), "name": connection},
                "site": "site-1",
                "metric": "averageRPS",
                "operator": "lessThan",
                "threshold": 1,
                "interval": 5,
            },
        }));
        Arc::new(alert.expect("AgentAlert"))
    }

    fn mk_integration(
        namespace: &str,
        name: &str,
        connection: &str,
        url_secret: &str,
    ) -> Arc<Integration> {
        let integration = serde_json::from_value(serde_json::json!({
            "apiVersion": "sigsci-kit.io/v1alpha1",
            "kind": "Integration",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "connectionRef": {"name": connection},
                "site": "site-1",
                "type": "slack",
                "urlFrom": {"secretKeyRef": {"name": url_secret, "key": "url"}},
                "events": ["flag"],
            },
        }));
        Arc::new(integration.expect("Integration"))
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

    #[test]
    fn objects_of_one_connection_and_site_share_a_resync_slot() {
        let slot = |alert: &AgentAlert| resync_slot(alert);
        let a = mk_alert("a", "one", ConnectionKind::SigSciConnection, "conn");
        let b = mk_alert("a", "two", ConnectionKind::SigSciConnection, "conn");
        let other_namespace = mk_alert("b", "one", ConnectionKind::SigSciConnection, "conn");
        let cluster_a = mk_alert("a", "x", ConnectionKind::ClusterSigSciConnection, "shared");
        let cluster_b = mk_alert("b", "y", ConnectionKind::ClusterSigSciConnection, "shared");
        assert_eq!(slot(&a), slot(&b));
        assert_ne!(slot(&a), slot(&other_namespace));
        assert_eq!(slot(&cluster_a), slot(&cluster_b));
        assert_ne!(slot(&a), slot(&cluster_a));
        let integration = mk_integration("a", "hook", "conn", "hook");
        assert_eq!(
            resync_slot(integration.as_ref()),
            resync_slot(a.as_ref()),
            "same connection, same site"
        );
    }

    #[test]
    fn until_slot_waits_for_the_slot_within_one_period() {
        let period = Duration::from_secs(300);
        // 1 800 000 000 000 ms is a multiple of 300 000: position 0 in the period.
        let start = 1_800_000_000_000_i64;
        assert_eq!(until_slot(1000, start, period), Duration::from_secs(1));
        assert_eq!(until_slot(1000, start + 1000, period), period);
        assert_eq!(
            until_slot(1000, start + 1001, period),
            Duration::from_millis(299_999)
        );
        // The slot is taken modulo the period.
        assert_eq!(
            until_slot(300_000 + 500, start, period),
            Duration::from_millis(500)
        );
        assert_eq!(until_slot(0, -1, period), Duration::from_millis(1));
        assert_eq!(until_slot(7, 0, Duration::ZERO), Duration::from_millis(1));
    }
}
