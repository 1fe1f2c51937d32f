//! Signal Sciences feed records as OCSF HTTP Activity events in Parquet.
//!
//! - [`mapping`]: the field-by-field table ([`MAPPING`], mirrored in `docs/ocsf-mapping.md`) and
//!   [`Event::from_record`], which applies it; the OCSF version is [`OCSF_VERSION`].
//! - [`writer`]: the Arrow schema ([`SCHEMA`]) and [`OcsfWriter`], which streams events into one
//!   Snappy-compressed Parquet file, row group by row group.
//! - [`reader`]: a written part's footer row count and event ids, for `feed verify`.

pub mod mapping;
pub mod reader;
pub mod writer;

pub use mapping::{DERIVED, Event, FieldMapping, MAPPING, OCSF_VERSION, Source};
pub use reader::{PartContents, read_uids};
pub use writer::{
    COMPRESSION, DICTIONARY_COLUMNS, OcsfWriter, ROW_GROUP_BYTES, ROW_GROUP_MEMORY, ROW_GROUP_ROWS,
    SCHEMA,
};

#[derive(Debug, thiserror::Error)]
pub enum OcsfError {
    /// A feed record that cannot be an event (not a JSON object, no id or time).
    #[error("feed record: {0}")]
    Record(String),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("a batch exceeds Arrow's 32-bit list offsets")]
    TooLarge,
}
