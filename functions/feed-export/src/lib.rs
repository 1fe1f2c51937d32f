//! Request feed export: every hour of every site to S3 or a directory, complete and exactly once.
//!
//! - [`Exporter`] runs the work: per site, every incomplete hour still in the API's retention
//!   (or a requested range), oldest first, within a deadline.
//! - An hour is fetched as sub-windows on up to two cursors per site ([`hour`]), each streamed
//!   through gzip into its own part object ([`pipeline`]); the manifest is written last and
//!   create-only ([`manifest`]), under a per-hour lease ([`lease`]). The per-site [`ledger`]
//!   records complete and lost hours.
//! - [`lambda`] is the Lambda shell's logic; the CLI calls [`Exporter`], [`verify`] and [`status`].

pub mod allocator;
pub mod clock;
mod dedup;
pub mod error;
pub mod hour;
pub mod lambda;
pub mod lease;
pub mod ledger;
pub mod manifest;
pub mod metrics;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod run;
pub mod status;
pub mod verify;
pub mod window;

pub use clock::{Clock, SharedClock, SystemClock, system_clock};
pub use error::{ExportError, Result};
pub use hour::EXPORTER_VERSION;
pub use manifest::Manifest;
pub use progress::{Progress, Quiet};
pub use report::{HourSummary, RunReport, SiteReport};
pub use run::{ExportRequest, ExportSettings, Exporter, SiteSelection};
pub use window::Hour;
