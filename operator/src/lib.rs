//! sigsci-kit operator: `SigSciConnection`, `ClusterSigSciConnection`, `AgentAlert`,
//! `Integration` and `SigSciList` reconciled against the Signal Sciences API.

pub mod cache;
pub mod claims;
pub mod connect;
pub mod controller;
pub mod crd;
pub mod echo;
pub mod http;
pub mod index;
pub mod lease;
pub mod limiter;
pub mod manifests;
pub mod metrics;
pub mod per_object;
pub mod reads;
pub mod remote;
pub mod run;
pub mod status;
pub mod telemetry;

use sigsci_config::Problems;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a reconcile can fail with. The class decides the condition reason and the requeue.
/// Wrapped errors are part of the message (conditions and logs show only the message) and so are
/// not also a `source()`, which `{:#}` would print a second time.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(kube::Error),
    #[error("Signal Sciences API: {0}")]
    Api(sigsci::Error),
    #[error("{kind} {name} not found")]
    ConnectionNotFound { kind: &'static str, name: String },
    #[error("Secret {namespace}/{name}: {problem}")]
    Secret {
        namespace: String,
        name: String,
        problem: String,
    },
    #[error("invalid spec: {0}")]
    InvalidSpec(Problems),
    #[error(
        "{subject} is held by {holder}, which declared it first; this object writes nothing while that one exists"
    )]
    Conflict { subject: String, holder: String },
    #[error("object has no {0}")]
    MissingMetadata(&'static str),
    // Boxed: the finalizer error wraps this type.
    #[error("finalizer: {0}")]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
}

/// How an error is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// May succeed on retry: back off and try again.
    Transient,
    /// Needs a change (spec, Secret, credentials): report it and retry slowly; watches on the
    /// Secret and the connection bring the object back early when that change happens.
    Permanent,
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Kube(_) => ErrorClass::Transient,
            Error::Api(error) if error.is_transient() => ErrorClass::Transient,
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(error)
                | kube::runtime::finalizer::Error::CleanupFailed(error) => error.class(),
                _ => ErrorClass::Transient,
            },
            Error::Api(_)
            | Error::ConnectionNotFound { .. }
            | Error::Secret { .. }
            | Error::InvalidSpec(_)
            | Error::Conflict { .. }
            | Error::MissingMetadata(_) => ErrorClass::Permanent,
        }
    }

    /// The condition reason (PascalCase) naming the failure.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesError",
            Error::Api(error) => match error {
                sigsci::Error::Unauthorized { .. } => "AuthenticationFailed",
                sigsci::Error::Forbidden { .. } => "PermissionDenied",
                sigsci::Error::Validation { .. } => "RejectedByAPI",
                sigsci::Error::NotFound { .. } => "NotFoundInAPI",
                sigsci::Error::RateLimited { .. } => "RateLimited",
                sigsci::Error::Config { .. } => "InvalidConnection",
                _ if error.is_transient() => "APIUnavailable",
                _ => "APIError",
            },
            Error::ConnectionNotFound { .. } => "ConnectionNotFound",
            Error::Secret { .. } => "SecretNotFound",
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::Conflict { .. } => "Conflict",
            Error::MissingMetadata(_) => "InvalidObject",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(error)
                | kube::runtime::finalizer::Error::CleanupFailed(error) => error.reason(),
                _ => "FinalizerError",
            },
        }
    }

    /// Low-cardinality label for the failures metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Api(error) => match error {
                sigsci::Error::Unauthorized { .. } | sigsci::Error::Forbidden { .. } => "auth",
                sigsci::Error::Validation { .. } => "validation",
                sigsci::Error::NotFound { .. } => "not_found",
                _ if error.is_transient() => "transient",
                _ => "api",
            },
            Error::ConnectionNotFound { .. } | Error::Secret { .. } => "reference",
            Error::InvalidSpec(_) | Error::MissingMetadata(_) => "invalid_spec",
            Error::Conflict { .. } => "conflict",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(error)
                | kube::runtime::finalizer::Error::CleanupFailed(error) => error.metric_label(),
                _ => "finalizer",
            },
        }
    }
}

impl From<kube::Error> for Error {
    fn from(error: kube::Error) -> Error {
        Error::Kube(error)
    }
}

impl From<sigsci::Error> for Error {
    fn from(error: sigsci::Error) -> Error {
        Error::Api(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_reasons() {
        let unauthorized = Error::Api(sigsci::Error::Unauthorized {
            status: 401,
            message: "bad token".into(),
        });
        assert_eq!(unauthorized.class(), ErrorClass::Permanent);
        assert_eq!(unauthorized.reason(), "AuthenticationFailed");
        assert_eq!(unauthorized.metric_label(), "auth");

        let server = Error::Api(sigsci::Error::Server {
            status: 503,
            message: "down".into(),
        });
        assert_eq!(server.class(), ErrorClass::Transient);
        assert_eq!(server.reason(), "APIUnavailable");

        let rejected = Error::Api(sigsci::Error::Validation {
            status: 400,
            message: "bad interval".into(),
        });
        assert_eq!(
            (rejected.class(), rejected.reason()),
            (ErrorClass::Permanent, "RejectedByAPI")
        );

        let wrapped = Error::Finalizer(Box::new(kube::runtime::finalizer::Error::CleanupFailed(
            unauthorized,
        )));
        assert_eq!(wrapped.class(), ErrorClass::Permanent);
        assert_eq!(wrapped.reason(), "AuthenticationFailed");
    }

    /// The CLI prints errors with anyhow's `{:#}` (message, then every `source()`).
    #[test]
    fn wrapped_errors_print_each_cause_once() {
        let unauthorized = Error::Api(sigsci::Error::Unauthorized {
            status: 401,
            message: "Unauthorized".into(),
        });
        let printed = anyhow::Error::new(unauthorized).context("cannot apply the change");
        assert_eq!(
            format!("{printed:#}"),
            "cannot apply the change: Signal Sciences API: 401 unauthorized: Unauthorized"
        );
    }
}
