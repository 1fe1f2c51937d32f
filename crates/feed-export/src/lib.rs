//! Request feed export: every hour of every site to S3 or a directory, complete and exactly once.
//!
//! - [`Exporter`] runs the work: per site, every incomplete hour still in the API's retention
//!   (or a requested range), oldest first, within a deadline.
//! - An hour is fetched as sub-windows on up to two cursors per site ([`hour`]), each streamed
//!   through gzip into its own part object ([`pipeline`]); the manifest is written last and
//!   create-only ([`manifest`]), under a per-hour lease ([`lease`]). The per-site [`ledger`]
//!   records complete and lost hours.
//! - [`environment`] is the deployed job (settings from the environment, dependencies, one run
//!   per event) that the Lambda shell in `functions/feed-export` runs; the CLI calls [`Exporter`],
//!   [`verify`] and [`status`].

pub mod allocator;
pub mod clock;
mod dedup;
pub mod environment;
pub mod error;
pub mod exporter;
pub mod hour;
pub mod lease;
pub mod ledger;
pub mod manifest;
pub mod metrics;
pub mod ocsf_output;
pub mod pipeline;
pub mod progress;
mod reachability;
pub mod report;
pub mod status;
pub mod verify;
pub mod window;

pub use clock::{Clock, SharedClock, SystemClock, system_clock};
pub use error::{ExportError, Result};
pub use exporter::{DEFAULT_GZIP_LEVEL, ExportRequest, ExportSettings, Exporter, SiteSelection};
pub use hour::EXPORTER_VERSION;
pub use manifest::Manifest;
pub use ocsf_output::{Format, Layout, OcsfOutput, Outputs};
pub use progress::{Progress, Quiet};
pub use report::{HourSummary, OcsfSummary, RunOutcome, RunReport, SiteReport};
pub use window::Hour;
