//! One sub-window, streamed: feed pages → bounded channel → gzip (a blocking thread) → bounded
//! channel → streaming upload. Memory is a few pages and one upload part, whatever the window's size.
//! Nothing is visible until the upload finishes; any failure aborts it, so a restarted window
//! rewrites its part from scratch and never leaves half a window behind.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use futures::StreamExt;
use kit_storage::{ObjectStore, StorageError, Upload};
use sha2::{Digest, Sha256};
use sigsci::{Client, FeedPage, FeedQuery};
use tokio::sync::mpsc;

use crate::dedup::IdSet;
use crate::manifest::{ApiStats, PartInfo};
use crate::ocsf_output::{OcsfEncoder, OcsfPartTarget, Outputs};
use crate::progress::Progress;
use crate::window::SubWindow;

/// Pages handed to the compressor: it asks for each one (see [`fetch_pages`]), so the queue
/// never holds more than the one asked for.
const PAGE_QUEUE: usize = 1;
/// Compressed chunks waiting for the uploader.
const CHUNK_QUEUE: usize = 2;
/// Compressed bytes collected before they are handed to the uploader.
const CHUNK_BYTES: usize = 256 * 1024;
/// Room for a chunk plus one page's compressed output past the threshold, so the buffer is
/// allocated once at its final size (each chunk in flight holds its whole allocation).
const CHUNK_CAPACITY: usize = CHUNK_BYTES + CHUNK_BYTES / 2;
/// NDJSON bytes collected before they are handed to the compressor (fewer, larger deflate calls).
const LINE_BUFFER_BYTES: usize = 128 * 1024;

#[derive(Clone, Debug)]
pub struct PipelineSettings {
    pub gzip_level: u32,
    pub page_limit: u32,
    /// A window estimated (from its first page) to hold more records than this is split first, so
    /// that its id set stays small.
    pub max_window_records: i64,
    /// The NDJSON and/or the OCSF Parquet.
    pub outputs: Outputs,
}

/// A finished window.
#[derive(Debug)]
pub enum WindowOutcome {
    /// `None` when the window had no records (no part is written).
    Done {
        part: Option<PartInfo>,
        /// The window's OCSF Parquet part, when that output is on and the window had records
        /// (boxed: the variant stays small for the windows without one).
        ocsf: Option<Box<PartInfo>>,
        stats: ApiStats,
        min: Option<DateTime<Utc>>,
        max: Option<DateTime<Utc>>,
    },
    /// Too big for one id set: fetch these smaller windows instead.
    Split(Vec<SubWindow>),
}

#[derive(Debug, thiserror::Error)]
pub enum WindowFailure {
    #[error(transparent)]
    Api(sigsci::Error),
    #[error(transparent)]
    Storage(StorageError),
    #[error("{0}")]
    Pipeline(String),
}

impl WindowFailure {
    /// Worth restarting the window: transient API/storage errors and expired cursors.
    pub fn is_retryable(&self) -> bool {
        match self {
            WindowFailure::Api(error) => {
                error.is_transient() || matches!(error, sigsci::Error::CursorExpired { .. })
            }
            WindowFailure::Storage(error) => error.is_transient(),
            WindowFailure::Pipeline(_) => true,
        }
    }
}

/// Where a window's part goes and what it is called.
pub struct PartTarget {
    pub store: Arc<dyn ObjectStore>,
    /// The hour's key prefix (ends with `/`).
    pub prefix: String,
    pub name: String,
    pub ocsf: Option<OcsfPartTarget>,
}

/// What the compressor produced.
struct Encoded {
    records: u64,
    bytes: u64,
    sha256: String,
    duplicates: u64,
    out_of_window: u64,
    min: Option<i64>,
    max: Option<i64>,
    ocsf: Option<crate::ocsf_output::EncodedPart>,
}

pub async fn export_window(
    client: &Client,
    site: &str,
    window: SubWindow,
    may_split: bool,
    target: &PartTarget,
    settings: &PipelineSettings,
    progress: &dyn Progress,
) -> Result<WindowOutcome, WindowFailure> {
    let (page_tx, page_rx) = mpsc::channel::<FeedPage>(PAGE_QUEUE);
    let (demand_tx, demand_rx) = mpsc::unbounded_channel::<()>();
    let (chunk_tx, chunk_rx) = mpsc::channel::<Bytes>(CHUNK_QUEUE);
    let level = settings.gzip_level;
    let (ocsf_tx, ocsf_rx) = mpsc::channel::<Bytes>(CHUNK_QUEUE);
    let ocsf = match &target.ocsf {
        Some(t) => {
            Some(OcsfEncoder::new(t.source.clone(), ocsf_tx).map_err(WindowFailure::Pipeline)?)
        }
        None => None,
    };
    let ndjson = settings.outputs.ndjson;
    let encoder = tokio::task::spawn_blocking(move || {
        encode(page_rx, demand_tx, chunk_tx, window, level, ndjson, ocsf)
    });

    let mut stats = ApiStats::default();
    let fetch = fetch_pages(
        client, site, window, may_split, settings, page_tx, demand_rx, &mut stats, progress,
    );
    let key = format!("{}{}", target.prefix, target.name);
    let upload = upload_chunks(target.store.as_ref(), &key, chunk_rx);
    let ocsf_upload = async {
        match &target.ocsf {
            Some(t) => upload_chunks(t.store.as_ref(), &t.key, ocsf_rx).await,
            None => Ok(None),
        }
    };
    let (fetched, uploaded, ocsf_uploaded) = tokio::join!(fetch, upload, ocsf_upload);
    let encoded = encoder
        .await
        .map_err(|e| WindowFailure::Pipeline(format!("compressor stopped: {e}")));

    let abort = |upload: Option<Box<dyn Upload>>| async move {
        if let Some(upload) = upload
            && let Err(error) = upload.abort().await
        {
            tracing::warn!(error = %error, "could not abort a discarded part upload");
        }
    };
    // The root cause first: a failed upload also makes the other stages stop.
    let (upload, ocsf_upload) = match (uploaded, ocsf_uploaded) {
        (Ok(upload), Ok(ocsf_upload)) => (upload, ocsf_upload),
        (Err(error), other) | (other, Err(error)) => {
            abort(other.ok().flatten()).await;
            return Err(WindowFailure::Storage(error));
        }
    };
    let split = match fetched {
        Ok(split) => split,
        Err(error) => {
            abort(upload).await;
            abort(ocsf_upload).await;
            // A compressor that failed (e.g. on a record that cannot be an OCSF event) is the
            // cause; the fetcher only saw it stop.
            return Err(match encoded {
                Ok(Err(cause)) => WindowFailure::Pipeline(cause),
                _ => error,
            });
        }
    };
    if let Some(pieces) = split {
        abort(upload).await;
        abort(ocsf_upload).await;
        return Ok(WindowOutcome::Split(pieces));
    }
    let encoded = match encoded.and_then(|result| result.map_err(WindowFailure::Pipeline)) {
        Ok(encoded) => encoded,
        Err(error) => {
            abort(upload).await;
            abort(ocsf_upload).await;
            return Err(error);
        }
    };
    stats.duplicates = encoded.duplicates;
    stats.out_of_window = encoded.out_of_window;
    let at = |t: Option<i64>| t.and_then(|t| DateTime::from_timestamp(t, 0));
    let (min, max) = (at(encoded.min), at(encoded.max));
    // The Parquet part first: a window counts as done only when every output of it is stored.
    let ocsf = match (ocsf_upload, &encoded.ocsf, &target.ocsf) {
        (Some(ocsf_upload), Some(part), Some(t)) => {
            let meta = match ocsf_upload.finish().await {
                Ok(meta) => meta,
                Err(error) => {
                    abort(upload).await;
                    return Err(WindowFailure::Storage(error));
                }
            };
            if meta.size != part.bytes {
                abort(upload).await;
                return Err(WindowFailure::Pipeline(format!(
                    "{}: stored {} bytes but encoded {}",
                    t.key, meta.size, part.bytes
                )));
            }
            Some(Box::new(PartInfo {
                name: t.key.clone(),
                from: window.from,
                until: window.until,
                records: part.records,
                bytes: part.bytes,
                sha256: part.sha256.clone(),
            }))
        }
        (ocsf_upload, _, _) => {
            abort(ocsf_upload).await;
            None
        }
    };
    let Some(upload) = upload else {
        return Ok(WindowOutcome::Done {
            part: None,
            ocsf,
            stats,
            min,
            max,
        });
    };
    let meta = upload.finish().await.map_err(WindowFailure::Storage)?;
    if meta.size != encoded.bytes {
        return Err(WindowFailure::Pipeline(format!(
            "{key}: stored {} bytes but compressed {}",
            meta.size, encoded.bytes
        )));
    }
    let part = PartInfo {
        name: target.name.clone(),
        from: window.from,
        until: window.until,
        records: encoded.records,
        bytes: encoded.bytes,
        sha256: encoded.sha256,
    };
    Ok(WindowOutcome::Done {
        part: Some(part),
        ocsf,
        stats,
        min,
        max,
    })
}

/// Streams the window's pages to the compressor. `Some(pieces)` = abandoned to be split.
///
/// A page is taken from the client only when the compressor asks for it, having dropped the one
/// before: a busy compressor then holds one page while the client fetches the next (the client
/// fetches ahead only into its own one-page queue). Taking it as soon as the queue had room held
/// a third page per window, waiting here.
#[allow(clippy::too_many_arguments)]
async fn fetch_pages(
    client: &Client,
    site: &str,
    window: SubWindow,
    may_split: bool,
    settings: &PipelineSettings,
    page_tx: mpsc::Sender<FeedPage>,
    mut demand: mpsc::UnboundedReceiver<()>,
    stats: &mut ApiStats,
    progress: &dyn Progress,
) -> Result<Option<Vec<SubWindow>>, WindowFailure> {
    let query = FeedQuery {
        from: window.from,
        until: window.until,
        tags: Vec::new(),
        limit: settings.page_limit,
    };
    let mut pages = client.feed(site, query);
    let mut first = true;
    let stopped = || WindowFailure::Pipeline("the compressor stopped early".into());
    loop {
        demand.recv().await.ok_or_else(stopped)?;
        let slot = page_tx.reserve().await.map_err(|_| stopped())?;
        let Some(page) = pages.next().await else {
            break;
        };
        let page = page.map_err(WindowFailure::Api)?;
        if first
            && may_split
            && let Some(pieces) = split_estimate(&page, window, settings)
        {
            tracing::debug!(site, %window, pieces = pieces.len(), "window too large for one id set, splitting");
            return Ok(Some(pieces));
        }
        first = false;
        stats.pages += 1;
        stats.retries += u64::from(page.attempts.saturating_sub(1));
        progress.records(site, page.records.len() as u64);
        slot.send(page);
    }
    Ok(None)
}

/// From a full first page, estimates the window's records (pages come in time order, records
/// shuffled within a page) and splits it if the estimate is well over the limit. A wrong estimate
/// only costs memory or a page, never correctness.
fn split_estimate(
    page: &FeedPage,
    window: SubWindow,
    settings: &PipelineSettings,
) -> Option<Vec<SubWindow>> {
    if page.records.len() < settings.page_limit as usize || window.minutes() < 2 {
        return None;
    }
    let timestamps: Vec<i64> = page
        .records
        .iter()
        .map(|r| r.timestamp.timestamp())
        .collect();
    let estimate = estimate_records(&timestamps, window)?;
    let limit = settings.max_window_records.max(1);
    if estimate <= limit + limit / 4 {
        return None;
    }
    Some(window.split(pieces(estimate, limit, window.minutes())))
}

/// The window's records extrapolated from its first page's `timestamps`, over the seconds the
/// page covers in full: the page ends somewhere inside its newest second, and counting that
/// second as covered underestimated a busy window (1000 records of 1.8 s that touch three
/// seconds read as 3 s of traffic), so a 2M-record hour was cut into 2-minute pieces of 67k
/// records with id sets of twice the size.
fn estimate_records(timestamps: &[i64], window: SubWindow) -> Option<i64> {
    let newest = *timestamps.iter().max()?;
    let before_newest = timestamps.iter().filter(|&&t| t < newest).count() as i64;
    let (records, seconds) = match newest - window.from {
        covered if covered > 0 && before_newest > 0 => (before_newest, covered),
        // All in one second (or clock skew): at least that rate.
        _ => (timestamps.len() as i64, 1),
    };
    Some(records * (window.until - window.from) / seconds)
}

/// How many pieces of whole minutes keep each piece's estimate within `limit`. Splitting into
/// `estimate / limit` pieces instead left some one minute longer than the others, up to twice
/// the limit (a 2M-record hour: 30-minute windows in 1- and 2-minute pieces of 33k and 67k
/// records), with an id set twice as large.
fn pieces(estimate: i64, limit: i64, minutes: i64) -> i64 {
    let per_piece = (limit * minutes / estimate.max(1)).max(1);
    (minutes + per_piece - 1) / per_piece
}

async fn upload_chunks(
    store: &dyn ObjectStore,
    key: &str,
    mut chunks: mpsc::Receiver<Bytes>,
) -> Result<Option<Box<dyn Upload>>, StorageError> {
    let mut upload: Option<Box<dyn Upload>> = None;
    while let Some(chunk) = chunks.recv().await {
        let writer = match &mut upload {
            Some(writer) => writer,
            // Created on the first chunk, so an empty window creates nothing.
            None => upload.insert(store.upload(key).await?),
        };
        writer.write(chunk).await?;
    }
    Ok(upload)
}

/// The compressor thread: filters, de-duplicates and gzips records as NDJSON lines (unless
/// `ndjson` is off), and hands the same records to the OCSF encoder.
fn encode(
    mut pages: mpsc::Receiver<FeedPage>,
    demand: mpsc::UnboundedSender<()>,
    chunks: mpsc::Sender<Bytes>,
    window: SubWindow,
    level: u32,
    ndjson: bool,
    mut ocsf: Option<OcsfEncoder>,
) -> Result<Encoded, String> {
    let mut ids = IdSet::default();
    // Without the NDJSON output no deflate state or line buffer is made (~1 MiB per window).
    let mut gzip = ndjson.then(|| GzipLines::new(level));
    let mut hasher = Sha256::new();
    let mut out = Encoded {
        records: 0,
        bytes: 0,
        sha256: String::new(),
        duplicates: 0,
        out_of_window: 0,
        min: None,
        max: None,
        ocsf: None,
    };
    let emit = |hasher: &mut Sha256, bytes: &mut u64, chunk: Vec<u8>| -> Result<(), String> {
        hasher.update(&chunk);
        *bytes += chunk.len() as u64;
        chunks
            .blocking_send(Bytes::from(chunk))
            .map_err(|_| "the uploader stopped early".to_string())
    };
    loop {
        // The fetcher is gone only if it failed or stopped, and then so is the window.
        if demand.send(()).is_err() {
            break;
        }
        let Some(page) = pages.blocking_recv() else {
            break;
        };
        for record in &page.records {
            let timestamp = record.timestamp.timestamp();
            if !window.contains(timestamp) {
                out.out_of_window += 1;
                continue;
            }
            if !ids.insert(record.id()) {
                out.duplicates += 1;
                continue;
            }
            if let Some(ocsf) = &mut ocsf {
                ocsf.push(record.raw.get())?;
            }
            out.records += 1;
            out.min = Some(out.min.map_or(timestamp, |m| m.min(timestamp)));
            out.max = Some(out.max.map_or(timestamp, |m| m.max(timestamp)));
            if let Some(gzip) = &mut gzip {
                gzip.push(record.raw.get(), record.raw.has_line_breaks())
                    .map_err(|e| e.to_string())?;
            }
        }
        drop(page);
        if let Some(chunk) = gzip.as_mut().and_then(GzipLines::full_chunk) {
            emit(&mut hasher, &mut out.bytes, chunk)?;
        }
    }
    out.ocsf = ocsf.map(OcsfEncoder::finish).transpose()?;
    // An empty window uploads nothing, so its deflate stream is not even finished.
    if out.records > 0
        && let Some(gzip) = gzip
    {
        let rest = gzip.finish().map_err(|e| e.to_string())?;
        emit(&mut hasher, &mut out.bytes, rest)?;
    }
    out.sha256 = hex::encode(hasher.finalize());
    Ok(out)
}

/// The NDJSON output of a window: lines collected into a buffer and gzipped a buffer at a time.
struct GzipLines {
    gzip: GzEncoder<Vec<u8>>,
    lines: Vec<u8>,
}

impl GzipLines {
    fn new(level: u32) -> GzipLines {
        GzipLines {
            gzip: GzEncoder::new(Vec::with_capacity(CHUNK_CAPACITY), Compression::new(level)),
            lines: Vec::with_capacity(LINE_BUFFER_BYTES + 64 * 1024),
        }
    }

    fn push(&mut self, raw: &str, line_breaks: bool) -> std::io::Result<()> {
        append_line(&mut self.lines, raw, line_breaks);
        if self.lines.len() >= LINE_BUFFER_BYTES {
            self.gzip.write_all(&self.lines)?;
            self.lines.clear();
        }
        Ok(())
    }

    /// The compressed bytes so far, once they make a chunk worth uploading.
    fn full_chunk(&mut self) -> Option<Vec<u8>> {
        (self.gzip.get_ref().len() >= CHUNK_BYTES)
            .then(|| std::mem::replace(self.gzip.get_mut(), Vec::with_capacity(CHUNK_CAPACITY)))
    }

    /// The rest of the compressed stream, trailer included.
    fn finish(mut self) -> std::io::Result<Vec<u8>> {
        self.gzip.write_all(&self.lines)?;
        self.gzip.finish()
    }
}

/// One record per line, byte for byte; a record the API sent pretty-printed (`line_breaks`, as
/// the client found when decoding it) is compacted first (a raw newline can only be whitespace
/// between tokens).
fn append_line(lines: &mut Vec<u8>, raw: &str, line_breaks: bool) {
    if line_breaks {
        compact_json_into(lines, raw);
    } else {
        lines.extend_from_slice(raw.as_bytes());
    }
    lines.push(b'\n');
}

/// Copies JSON text without the whitespace outside strings.
fn compact_json_into(out: &mut Vec<u8>, raw: &str) {
    let mut in_string = false;
    let mut escaped = false;
    for &byte in raw.as_bytes() {
        if in_string {
            out.push(byte);
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if !matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
            in_string = byte == b'"';
            out.push(byte);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_counts_only_the_seconds_a_first_page_covers_in_full() {
        let window = SubWindow {
            from: 3600,
            until: 3600 + 1800,
        };
        // 555 records a second; the page ends after 445 of the second second.
        let mut timestamps = vec![3600; 555];
        timestamps.extend([3601; 445]);
        assert_eq!(estimate_records(&timestamps, window), Some(555 * 1800));
        // A quiet first second: 2 seconds in full, not 3.
        let mut timestamps = vec![3600; 450];
        timestamps.extend([3601; 500]);
        timestamps.extend([3602; 50]);
        assert_eq!(estimate_records(&timestamps, window), Some(950 * 1800 / 2));
        // Everything in the window's first second: at least that rate.
        assert_eq!(estimate_records(&[3600; 1000], window), Some(1000 * 1800));
        assert_eq!(estimate_records(&[], window), None);
        // 1M records in a half hour: 1-minute pieces of 33k, within a 50k limit.
        assert_eq!(pieces(555 * 1800, 50_000, 30), 30);
    }

    #[test]
    fn split_pieces_stay_within_the_limit() {
        // 1M records in 30 minutes at 50k per window: 1-minute pieces, not 1 and 2.
        assert_eq!(pieces(1_000_000, 50_000, 30), 30);
        assert_eq!(pieces(100_000, 50_000, 30), 2);
        assert_eq!(pieces(36_000, 10_000, 30), 4);
        for (estimate, limit, minutes) in [(70_000, 50_000, 30), (3_000_000, 50_000, 60)] {
            let window = SubWindow {
                from: 0,
                until: minutes * 60,
            };
            let rate = estimate / minutes;
            for piece in window.split(pieces(estimate, limit, minutes)) {
                assert!(piece.minutes() * rate <= limit || piece.minutes() == 1);
            }
        }
    }

    #[test]
    fn lines_are_verbatim_unless_they_contain_newlines() {
        let mut out = Vec::new();
        append_line(&mut out, r#"{"id":"a", "uri":"/x y"}"#, false);
        append_line(
            &mut out,
            "{\n  \"id\": \"b\",\n  \"v\": \"keep \\\" \\n  this\"\n}",
            true,
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "{\"id\":\"a\", \"uri\":\"/x y\"}\n{\"id\":\"b\",\"v\":\"keep \\\" \\n  this\"}\n"
        );
    }
}
