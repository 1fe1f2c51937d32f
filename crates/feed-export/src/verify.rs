//! Re-reads an hour's parts and checks them against its manifest: the NDJSON parts, and the OCSF
//! Parquet parts it lists (size, sha256, footer, rows, and the same ids as the NDJSON).

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader};

use flate2::read::MultiGzDecoder;
use kit_storage::ObjectStore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::manifest::{Manifest, PartInfo};
use crate::ocsf_output::OcsfParts;
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
    /// The OCSF Parquet parts, when the manifest lists that output (unread without a store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ocsf: Option<OcsfVerification>,
    pub problems: Vec<String>,
}

/// What the OCSF parts held.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OcsfVerification {
    pub parts: usize,
    /// Rows read from the parts that parse.
    pub records: u64,
    pub bytes: u64,
}

/// Problems past this many are counted, not listed: one bad part must not flood the output.
const MAX_PROBLEMS: usize = 50;

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

/// Checks one hour. `ocsf` is the store the OCSF parts were written to (their names in the
/// manifest are its keys); without it an hour that lists OCSF parts fails verification.
pub async fn verify_hour(
    store: &dyn ObjectStore,
    ocsf: Option<&dyn ObjectStore>,
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
        check_size_and_sha256(part, &object.body, "", &mut out);
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
                    if !in_window && out.problems.len() < MAX_PROBLEMS {
                        out.problems.push(format!(
                            "{}: record {} has timestamp {} outside the part's window",
                            part.name, head.id, head.timestamp
                        ));
                    }
                    if !seen.insert(head.id.into_owned()) && out.problems.len() < MAX_PROBLEMS {
                        out.problems
                            .push(format!("{}: duplicate record id", part.name));
                    }
                }
                Err(error) if out.problems.len() < MAX_PROBLEMS => out.problems.push(format!(
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
    if let Some(listed) = &manifest.ocsf {
        let ndjson_ids = ndjson_written.then_some(&seen);
        match ocsf {
            Some(ocsf) => verify_ocsf(ocsf, listed, &manifest, ndjson_ids, &mut out).await?,
            None => {
                out.problems.push(format!(
                    "the manifest lists {} OCSF parts and no OCSF store was given to check them",
                    listed.parts.len()
                ));
                out.ocsf = Some(OcsfVerification {
                    parts: listed.parts.len(),
                    ..OcsfVerification::default()
                });
            }
        }
    }
    Ok(out)
}

/// The manifest's OCSF parts: each present with its size and sha256, a Parquet file whose footer
/// and rows agree with the recorded count, no stray part beside them, and (when the hour has
/// NDJSON too) exactly the NDJSON's ids.
async fn verify_ocsf(
    store: &dyn ObjectStore,
    listed: &OcsfParts,
    manifest: &Manifest,
    ndjson_ids: Option<&HashSet<String>>,
    out: &mut Verification,
) -> Result<()> {
    let mut summary = OcsfVerification {
        parts: listed.parts.len(),
        ..OcsfVerification::default()
    };
    let mut uids = HashSet::new();
    let mut complete = true;
    for part in &listed.parts {
        let name = &part.name;
        let Some(object) = store.get(name).await? else {
            out.problems.push(format!("OCSF part {name}: missing"));
            complete = false;
            continue;
        };
        summary.bytes += object.body.len() as u64;
        check_size_and_sha256(part, &object.body, "OCSF part ", out);
        match ocsf::read_uids(object.body) {
            Ok(contents) => {
                if contents.footer_rows != part.records {
                    out.problems.push(format!(
                        "OCSF part {name}: footer says {} rows, manifest says {}",
                        contents.footer_rows, part.records
                    ));
                }
                if contents.uids.len() as u64 != contents.footer_rows {
                    out.problems.push(format!(
                        "OCSF part {name}: {} rows read, footer says {}",
                        contents.uids.len(),
                        contents.footer_rows
                    ));
                }
                summary.records += contents.uids.len() as u64;
                for uid in contents.uids {
                    if !uids.insert(uid) && out.problems.len() < MAX_PROBLEMS {
                        out.problems
                            .push(format!("OCSF part {name}: duplicate metadata.uid"));
                    }
                }
            }
            Err(error) => {
                out.problems.push(format!(
                    "OCSF part {name}: not a readable Parquet file: {error}"
                ));
                complete = false;
            }
        }
    }
    if complete && summary.records != manifest.records {
        out.problems.push(format!(
            "{} events in the OCSF parts, manifest says {} records",
            summary.records, manifest.records
        ));
    }
    if let Some(ids) = ndjson_ids.filter(|_| complete) {
        let only_ndjson: BTreeSet<&String> = ids.difference(&uids).collect();
        let only_ocsf: BTreeSet<&String> = uids.difference(ids).collect();
        for (what, extra) in [
            ("in the NDJSON but not the OCSF", only_ndjson),
            ("in the OCSF but not the NDJSON", only_ocsf),
        ] {
            if let Some(first) = extra.first() {
                out.problems.push(format!(
                    "{} record ids are {what} (first: {first})",
                    extra.len()
                ));
            }
        }
    }
    // Every part of the hour shares the prefix up to `part-` (the layout's hour prefix).
    let prefixes: BTreeSet<&str> = listed
        .parts
        .iter()
        .filter_map(|p| p.name.rfind("part-").map(|at| &p.name[..at]))
        .collect();
    if let [prefix] = prefixes.into_iter().collect::<Vec<_>>()[..] {
        for object in store.list(prefix).await? {
            let stray = object
                .key
                .strip_prefix(prefix)
                .is_some_and(|name| name.starts_with("part-") && name.ends_with(".parquet"))
                && !listed.parts.iter().any(|p| p.name == object.key);
            if stray {
                out.problems.push(format!(
                    "OCSF part {}: stray part not in the manifest (a scan of the partition would read it)",
                    object.key
                ));
            }
        }
    }
    out.ocsf = Some(summary);
    Ok(())
}

fn check_size_and_sha256(part: &PartInfo, body: &[u8], what: &str, out: &mut Verification) {
    if body.len() as u64 != part.bytes {
        out.problems.push(format!(
            "{what}{}: {} bytes, manifest says {}",
            part.name,
            body.len(),
            part.bytes
        ));
    }
    let sha256 = hex::encode(Sha256::digest(body));
    if sha256 != part.sha256 {
        out.problems.push(format!(
            "{what}{}: sha256 {sha256}, manifest says {}",
            part.name, part.sha256
        ));
    }
}
