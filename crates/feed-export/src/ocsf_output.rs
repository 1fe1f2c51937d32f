//! The OCSF Parquet output: the same records as the NDJSON, mapped by the `ocsf` crate, one
//! Parquet part per sub-window, under the Hive or the Security Lake custom-source layout.
//!
//! The parts follow the NDJSON's discipline: a window's part becomes visible only when its upload
//! finishes, a failed window aborts it, stray parts of earlier attempts are removed before the
//! hour's manifest, and the manifest (which lists them under `ocsf`) is written last, create-only.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use kit_storage::ObjectStore;
use ocsf::{OcsfWriter, Source};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::error::{ExportError, Result};
use crate::manifest::PartInfo;
use crate::window::Hour;

/// Compressed bytes collected before they are handed to the uploader.
const CHUNK_BYTES: usize = 256 * 1024;

/// What `feed export --format` writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Ndjson,
    OcsfParquet,
    Both,
}

impl Format {
    pub const NAMES: [&str; 3] = ["ndjson", "ocsf-parquet", "both"];

    pub fn ndjson(self) -> bool {
        self != Format::OcsfParquet
    }

    pub fn ocsf(self) -> bool {
        self != Format::Ndjson
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Format, String> {
        match text {
            "ndjson" => Ok(Format::Ndjson),
            "ocsf-parquet" => Ok(Format::OcsfParquet),
            "both" => Ok(Format::Both),
            other => Err(format!(
                "{other:?} is not a format (one of {})",
                Format::NAMES.join(", ")
            )),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let index = match self {
            Format::Ndjson => 0,
            Format::OcsfParquet => 1,
            Format::Both => 2,
        };
        f.write_str(Format::NAMES[index])
    }
}

/// Where the Parquet parts go, relative to the OCSF store's root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `corp=C/site=S/dt=YYYY-MM-DD/hour=HH/part-NNNNN.parquet`, as the NDJSON.
    Hive,
    /// `ext/{source}/region={region}/accountId={account_id}/eventDay=YYYYMMDD/{corp}~{site}~{YYYYMMDDHH}~part-NNNNN.parquet`:
    /// an Amazon Security Lake custom source (the store's root is the lake bucket's). Every hour of
    /// every site shares the day's directory; `~`, which no corp or site name holds, keeps one
    /// hour's prefix from matching another's.
    SecurityLake {
        source: String,
        region: String,
        account_id: String,
    },
}

impl Layout {
    /// The layout named `layout` (`hive`, or `security-lake`, which needs the other three); a bad
    /// value would scatter objects where the lake never looks. `names` are the settings' names
    /// (flags or variables) for the errors.
    pub fn parse(
        layout: &str,
        source: Option<&str>,
        region: Option<&str>,
        account_id: Option<&str>,
        names: [&str; 4],
    ) -> Result<Layout> {
        let bad = |index: usize, message: String| ExportError::Config {
            setting: names[index].to_string(),
            message,
        };
        match layout {
            "hive" => return Ok(Layout::Hive),
            "security-lake" => {}
            other => {
                return Err(bad(
                    0,
                    format!("{other:?} is not a layout (hive or security-lake)"),
                ));
            }
        }
        let (source, region, account_id) = match (source, region, account_id) {
            (Some(source), Some(region), Some(account_id)) => (source, region, account_id),
            (source, region, _) => {
                let index = if source.is_none() {
                    1
                } else if region.is_none() {
                    2
                } else {
                    3
                };
                return Err(bad(index, "is needed by the security-lake layout".into()));
            }
        };
        let name_ok = source.len() <= 64
            && !source.is_empty()
            && source
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(bad(
                1,
                format!("{source:?} is not a custom source name (1-64 of A-Z a-z 0-9 - _)"),
            ));
        }
        let region_ok = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(bad(
                2,
                format!("{region:?} is not an AWS region (e.g. eu-west-1)"),
            ));
        }
        if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(
                3,
                format!("{account_id:?} is not a 12-digit AWS account id"),
            ));
        }
        Ok(Layout::SecurityLake {
            source: source.to_string(),
            region: region.to_string(),
            account_id: account_id.to_string(),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Layout::Hive => "hive",
            Layout::SecurityLake { .. } => "security-lake",
        }
    }

    /// Every key of one (corp, site, hour) starts with this, and no other hour's key does.
    pub fn hour_prefix(&self, corp: &str, site: &str, hour: Hour) -> String {
        let at = hour.datetime();
        match self {
            Layout::Hive => crate::window::keys::hour_prefix(corp, site, hour),
            Layout::SecurityLake {
                source,
                region,
                account_id,
            } => format!(
                "ext/{source}/region={region}/accountId={account_id}/eventDay={}/{corp}~{site}~{}~",
                at.format("%Y%m%d"),
                at.format("%Y%m%d%H")
            ),
        }
    }

    /// The Parquet part of the NDJSON part `part-NNNNN.ndjson.gz` (same window, same number).
    pub fn part_key(&self, corp: &str, site: &str, hour: Hour, ndjson_part: &str) -> String {
        let stem = ndjson_part
            .strip_suffix(".ndjson.gz")
            .unwrap_or(ndjson_part);
        format!("{}{stem}.parquet", self.hour_prefix(corp, site, hour))
    }

    fn is_part_key(key: &str) -> bool {
        key.rsplit('/')
            .next()
            .is_some_and(|name| name.contains("part-") && name.ends_with(".parquet"))
    }
}

/// The OCSF output of a run: its store and layout.
#[derive(Clone)]
pub struct OcsfOutput {
    pub store: Arc<dyn ObjectStore>,
    pub layout: Layout,
}

impl fmt::Debug for OcsfOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OcsfOutput")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

/// Where the OCSF Parquet goes unless told: beside the NDJSON's partitions, under `ocsf/` (outside
/// the NDJSON table's partition paths).
pub fn default_location(feed_location: &str) -> String {
    format!("{}/ocsf", feed_location.trim_end_matches('/'))
}

/// What a run writes: the NDJSON, the OCSF Parquet, or both.
#[derive(Clone, Debug)]
pub struct Outputs {
    pub ndjson: bool,
    pub ocsf: Option<OcsfOutput>,
}

impl Default for Outputs {
    fn default() -> Self {
        Outputs {
            ndjson: true,
            ocsf: None,
        }
    }
}

impl Outputs {
    /// The outputs of `format`; `ocsf` is where the Parquet goes when the format has it.
    pub fn new(format: Format, ocsf: Option<OcsfOutput>) -> Result<Outputs> {
        match (format.ocsf(), ocsf) {
            (true, None) => Err(ExportError::Config {
                setting: "format".into(),
                message: format!("{format} needs an OCSF output location"),
            }),
            (wants, ocsf) => Ok(Outputs {
                ndjson: format.ndjson(),
                ocsf: ocsf.filter(|_| wants),
            }),
        }
    }
}

/// The manifest's record of the hour's OCSF parts (`name` is the key in the OCSF store).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OcsfParts {
    pub version: String,
    pub layout: String,
    pub compression: String,
    pub parts: Vec<PartInfo>,
}

/// One window's Parquet part: where it goes and whose records it holds.
pub struct OcsfPartTarget {
    pub store: Arc<dyn ObjectStore>,
    pub key: String,
    pub source: Source,
}

impl OcsfOutput {
    pub fn part_target(
        &self,
        corp: &str,
        site: &str,
        hour: Hour,
        ndjson_part: &str,
    ) -> OcsfPartTarget {
        OcsfPartTarget {
            store: self.store.clone(),
            key: self.layout.part_key(corp, site, hour, ndjson_part),
            source: Source {
                corp: corp.to_string(),
                site: site.to_string(),
            },
        }
    }

    /// Removes the uploads a killed run left and the parts of the hour not in `keep`: a crashed
    /// attempt's windows, or (with `keep` empty) an hour given up. The caller holds the lease.
    pub async fn remove_parts_except(
        &self,
        corp: &str,
        site: &str,
        hour: Hour,
        keep: &[PartInfo],
    ) -> Result<()> {
        let prefix = self.layout.hour_prefix(corp, site, hour);
        self.store.sweep_incomplete(&prefix).await?;
        for object in self.store.list(&prefix).await? {
            if Layout::is_part_key(&object.key) && !keep.iter().any(|p| p.name == object.key) {
                tracing::info!(site, %hour, part = %object.key, "removing an OCSF part no manifest lists");
                self.store.delete(&object.key).await?;
            }
        }
        Ok(())
    }

    pub fn manifest_entry(&self, parts: Vec<PartInfo>) -> OcsfParts {
        OcsfParts {
            version: ocsf::OCSF_VERSION.to_string(),
            layout: self.layout.name().to_string(),
            compression: ocsf::COMPRESSION.to_string(),
            parts,
        }
    }
}

/// What the Parquet encoder produced for a window.
pub struct EncodedPart {
    pub records: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// The Parquet writer's sink: cuts what the writer emits into chunks of `CHUNK_BYTES` and hands
/// them to the uploader as they fill, hashing and counting them. A row group goes out in one
/// write; through this it is never held a second time, whole, in a buffer.
struct ChunkSink {
    buffer: Vec<u8>,
    chunks: mpsc::Sender<Bytes>,
    hasher: Sha256,
    bytes: u64,
}

impl ChunkSink {
    fn send(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES));
        self.hasher.update(&chunk);
        self.bytes += chunk.len() as u64;
        self.chunks
            .blocking_send(Bytes::from(chunk))
            .map_err(|_| io::Error::other("the OCSF uploader stopped early"))
    }
}

impl Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let taken = data.len().min(CHUNK_BYTES - self.buffer.len());
        self.buffer.extend_from_slice(&data[..taken]);
        if self.buffer.len() == CHUNK_BYTES {
            self.send()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The Parquet side of a window's encoder thread: events in, finished bytes out to the uploader
/// as row groups complete.
pub struct OcsfEncoder {
    writer: OcsfWriter<ChunkSink>,
}

impl OcsfEncoder {
    pub fn new(source: Source, chunks: mpsc::Sender<Bytes>) -> std::result::Result<Self, String> {
        let sink = ChunkSink {
            buffer: Vec::with_capacity(CHUNK_BYTES),
            chunks,
            hasher: Sha256::new(),
            bytes: 0,
        };
        Ok(OcsfEncoder {
            writer: OcsfWriter::new(sink, source).map_err(|e| e.to_string())?,
        })
    }

    /// Maps one record; a record that cannot be an event fails the window.
    pub fn push(&mut self, raw: &str) -> std::result::Result<(), String> {
        self.writer.push_record(raw).map_err(|e| e.to_string())
    }

    /// Writes the last row group and the footer; an empty window sends nothing (no part).
    pub fn finish(self) -> std::result::Result<EncodedPart, String> {
        let (mut sink, records) = self.writer.finish().map_err(|e| e.to_string())?;
        if records == 0 {
            return Ok(EncodedPart {
                records,
                bytes: 0,
                sha256: String::new(),
            });
        }
        if !sink.buffer.is_empty() {
            sink.send().map_err(|e| e.to_string())?;
        }
        Ok(EncodedPart {
            records,
            bytes: sink.bytes,
            sha256: hex::encode(sink.hasher.finalize()),
        })
    }
}
