use kit_storage::StorageError;

pub type Result<T, E = ExportError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A setting is missing or wrong; nothing was written.
    #[error("{setting}: {message}")]
    Config { setting: String, message: String },
    /// The API refused or failed; `source` keeps the HTTP status.
    #[error("{context}: {source}")]
    Api {
        context: String,
        #[source]
        source: sigsci::Error,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A bookkeeping object (ledger, manifest, lease) does not parse.
    #[error("{key} is not a valid {kind}: {reason}")]
    Corrupt {
        key: String,
        kind: &'static str,
        reason: String,
    },
    /// The ledger kept changing under us (many concurrent writers).
    #[error("could not update {key}: {attempts} concurrent updates in a row")]
    Contended { key: String, attempts: u32 },
    /// Another exporter took over this hour's lease (ours expired); the hour was not committed.
    #[error("lost the lease on {site} {hour} to another exporter; the hour was not committed")]
    LeaseLost { site: String, hour: String },
    /// A sub-window kept failing with transient errors.
    #[error("{site} {hour}: sub-window {window} failed {attempts} times; last error: {last}")]
    GaveUp {
        site: String,
        hour: String,
        window: String,
        attempts: u32,
        last: String,
    },
    /// The API stopped answering (connections refused, reset or timed out) for several
    /// sub-windows in a row during this run; the run stops and the rest stays pending.
    #[error(
        "{site} {hour}: the API did not answer for {failures} sub-windows in a row; stopping this run, the hours left stay pending (last error: {last})"
    )]
    ApiAway {
        site: String,
        hour: String,
        failures: u32,
        last: String,
    },
    #[error("{site} {hour}: {message}")]
    Pipeline {
        site: String,
        hour: String,
        message: String,
    },
    #[error("stopped before the deadline; the rest is left for the next run")]
    DeadlineReached,
}

impl ExportError {
    pub fn api(context: impl Into<String>, source: sigsci::Error) -> ExportError {
        ExportError::Api {
            context: context.into(),
            source,
        }
    }

    /// Later runs may succeed (throttling, outages, contention); config, auth and data errors not.
    pub fn is_transient(&self) -> bool {
        match self {
            ExportError::Api { source, .. } => {
                source.is_transient() || matches!(source, sigsci::Error::CursorExpired { .. })
            }
            ExportError::Storage(error) => error.is_transient(),
            ExportError::Contended { .. }
            | ExportError::LeaseLost { .. }
            | ExportError::GaveUp { .. }
            | ExportError::ApiAway { .. }
            | ExportError::Pipeline { .. }
            | ExportError::DeadlineReached => true,
            ExportError::Config { .. } | ExportError::Corrupt { .. } => false,
        }
    }
}
