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
