//! Re-reads an hour's parts and checks them against its manifest.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};

use flate2::read::MultiGzDecoder;
use kit_storage::ObjectStore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::manifest::Manifest;
use crate::window::{Hour, keys};

#[derive(Clone, Debug, Default, Serialize)]
pub struct Verification {
    pub site: String,
    pub hour: String,
    pub manifest_found: bool,
    pub parts: usize,
    /// Records counted in the parts.
    pub records: u64,
    /// Records the manifest promises.
    pub manifest_records: u64,
    pub problems: Vec<String>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.manifest_found && self.problems.is_empty()
    }
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
}

pub async fn verify_hour(
    store: &dyn ObjectStore,
    corp: &str,
    site: &str,
    hour: Hour,
) -> Result<Verification> {
    let mut out = Verification {
        site: site.to_string(),
        hour: hour.to_string(),
        ..Verification::default()
    };
    let manifest_key = keys::manifest(corp, site, hour);
    let Some(object) = store.get(&manifest_key).await? else {
        out.problems.push(format!(
            "no manifest at {manifest_key}: the hour is not complete"
        ));
        return Ok(out);
    };
    let manifest = Manifest::parse(&manifest_key, &object.body)?;
    out.manifest_found = true;
    out.manifest_records = manifest.records;
    out.parts = manifest.parts.len();
    if (
        manifest.corp.as_str(),
        manifest.site.as_str(),
        manifest.from,
    ) != (corp, site, hour.start())
    {
        out.problems.push(format!(
            "manifest describes {}/{} {} instead",
            manifest.corp,
            manifest.site,
            Hour(manifest.from)
        ));
    }
    let prefix = keys::hour_prefix(corp, site, hour);
    let mut seen = HashSet::new();
    for part in &manifest.parts {
        let key = format!("{prefix}{}", part.name);
        let Some(object) = store.get(&key).await? else {
            out.problems.push(format!("{}: missing", part.name));
            continue;
        };
        if object.body.len() as u64 != part.bytes {
            out.problems.push(format!(
                "{}: {} bytes, manifest says {}",
                part.name,
                object.body.len(),
                part.bytes
            ));
        }
        let sha256 = hex::encode(Sha256::digest(&object.body));
        if sha256 != part.sha256 {
            out.problems.push(format!(
                "{}: sha256 {sha256}, manifest says {}",
                part.name, part.sha256
            ));
        }
        let mut records = 0u64;
        let mut reader = BufReader::new(MultiGzDecoder::new(object.body.as_ref()));
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) => {
                    out.problems
                        .push(format!("{}: cannot decompress: {error}", part.name));
                    break;
                }
            }
            records += 1;
            let text = line.trim_end_matches('\n');
            match serde_json::from_str::<Head<'_>>(text) {
                Ok(head) => {
                    let in_window = chrono::DateTime::parse_from_rfc3339(&head.timestamp)
                        .is_ok_and(|t| (part.from..part.until).contains(&t.timestamp()));
                    if !in_window && out.problems.len() < 50 {
                        out.problems.push(format!(
                            "{}: record {} has timestamp {} outside the part's window",
                            part.name, head.id, head.timestamp
                        ));
                    }
                    if !seen.insert(head.id.into_owned()) && out.problems.len() < 50 {
                        out.problems
                            .push(format!("{}: duplicate record id", part.name));
                    }
                }
                Err(error) if out.problems.len() < 50 => out.problems.push(format!(
                    "{}: line {records} is not a record: {error}",
                    part.name
                )),
                Err(_) => {}
            }
        }
        if records != part.records {
            out.problems.push(format!(
                "{}: {records} records, manifest says {}",
                part.name, part.records
            ));
        }
        out.records += records;
    }
    // An hour exported as OCSF Parquet only has no NDJSON parts to count.
    let ndjson_written = !(manifest.parts.is_empty() && manifest.ocsf.is_some());
    if ndjson_written && out.records != manifest.records {
        out.problems.push(format!(
            "{} records in the parts, manifest says {}",
            out.records, manifest.records
        ));
    }
    for object in store.list(&prefix).await? {
        let name = object.key.strip_prefix(&prefix).unwrap_or(&object.key);
        if keys::is_part_name(name) && !manifest.parts.iter().any(|p| p.name == name) {
            out.problems.push(format!(
                "{name}: stray part not in the manifest (a scan of the partition would read it)"
            ));
        }
    }
    Ok(out)
}
