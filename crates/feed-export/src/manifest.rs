//! `_manifest.json`: written last, create-only; its presence is what makes an hour complete.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{ExportError, Result};

pub const MANIFEST_FORMAT: &str = "sigsci-kit/feed-manifest/v1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub corp: String,
    pub site: String,
    /// `[from, until)` in epoch seconds: the hour.
    pub from: i64,
    pub until: i64,
    pub hour: DateTime<Utc>,
    pub records: u64,
    pub min_timestamp: Option<DateTime<Utc>>,
    pub max_timestamp: Option<DateTime<Utc>>,
    pub parts: Vec<PartInfo>,
    /// The hour's OCSF Parquet parts, when that output was on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocsf: Option<crate::ocsf_output::OcsfParts>,
    pub api: ApiStats,
    pub run_id: String,
    pub exporter_version: String,
    pub written_at: DateTime<Utc>,
}

/// One `part-NNNNN.ndjson.gz`: the records of one sub-window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    /// File name inside the hour's directory.
    pub name: String,
    pub from: i64,
    pub until: i64,
    pub records: u64,
    /// Compressed size.
    pub bytes: u64,
    /// SHA-256 of the compressed object, hex.
    pub sha256: String,
}

/// What fetching the hour cost.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiStats {
    /// Pages that made it into the output.
    pub pages: u64,
    /// Extra HTTP attempts (retries) on those pages.
    pub retries: u64,
    /// Sub-window restarts (expired cursor, failed page) and splits.
    pub restarts: u64,
    /// Of those restarts, the ones for an expired cursor (absent in older manifests).
    #[serde(default)]
    pub cursor_expiries: u64,
    /// Records the API returned twice within a window (dropped).
    pub duplicates: u64,
    /// Records outside the requested window (dropped; they belong to another window).
    pub out_of_window: u64,
}

impl Manifest {
    pub fn parse(key: &str, body: &[u8]) -> Result<Manifest> {
        let manifest: Manifest =
            serde_json::from_slice(body).map_err(|e| ExportError::Corrupt {
                key: key.to_string(),
                kind: "manifest",
                reason: e.to_string(),
            })?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(ExportError::Corrupt {
                key: key.to_string(),
                kind: "manifest",
                reason: format!("unknown format {:?}", manifest.format),
            });
        }
        Ok(manifest)
    }

    pub fn to_json(&self) -> Vec<u8> {
        // A struct of plain fields always serializes.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn compressed_bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }
}
