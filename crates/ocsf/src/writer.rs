//! The Parquet side: the Arrow schema of the events and a writer that streams them out in row
//! groups, so memory holds one batch and the row group being encoded, never the whole input.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, LazyLock};

use arrow_array::builder::{ArrayBuilder, Int32Builder, Int64Builder, StringBuilder};
use arrow_array::{Array, ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::OcsfError;
use crate::mapping::{
    CATEGORY_NAME, CATEGORY_UID, CLASS_NAME, CLASS_UID, Enrichment, Event, Header, OCSF_VERSION,
    Observable, PRODUCT_NAME, Source, TAG_PROVIDER, TAG_TYPE, severity_name, status_name,
    type_name,
};

/// Rows per Arrow batch handed to the encoder, and the records' size that ends a batch sooner
/// (the row group's limits are checked between batches). A batch is built beside the row group
/// being encoded, so it is kept small: 256 rows of about 1.3 KB.
const BATCH_ROWS: usize = 256;
const BATCH_BYTES: usize = 256 << 10;
/// Rows per row group at most (of feed records, about 1.6 MB compressed): Athena reads and
/// skips row groups by their statistics.
pub const ROW_GROUP_ROWS: usize = 8192;
/// A row group also ends at this estimated encoded size, so rows with huge headers cannot
/// grow one without bound (it splits a batch; the memory limit below is checked after one).
pub const ROW_GROUP_BYTES: usize = 4 << 20;
/// A row group is held in memory until it is complete (compressed pages, open pages and
/// dictionaries), and two windows encode at once: it also ends once the writer holds this much.
/// The trade-off is the row group's size: with feed records that is about 1700 rows, 0.35 MB
/// compressed (6 % more file than 8192-row groups; 2 MiB gave 2500 rows and 5 %), still enough for
/// Athena to read a column chunk per request and skip row groups by their statistics; 8192 rows
/// held ~5 MB more per writer.
pub const ROW_GROUP_MEMORY: usize = 3 << 19;
/// Data and dictionary page limit: each of the ~50 columns holds one page open.
const PAGE_BYTES: usize = 64 << 10;
/// The columns whose values repeat (constants, methods, countries, header and tag names): a
/// dictionary makes them small. Elsewhere (ids, times, URLs, header values, JSON) values are
/// mostly distinct, and a dictionary only costs memory and CPU before it falls back.
pub const DICTIONARY_COLUMNS: [&str; 26] = [
    "activity_name",
    "category_name",
    "class_name",
    "type_name",
    "severity",
    "status",
    "status_code",
    "metadata.version",
    "metadata.tenant_uid",
    "metadata.log_name",
    "metadata.product.name",
    "metadata.product.vendor_name",
    "src_endpoint.location.country",
    "dst_endpoint.hostname",
    "dst_endpoint.name",
    "http_request.http_method",
    "http_request.version",
    "http_request.user_agent",
    "http_request.url.scheme",
    "http_request.url.hostname",
    "http_request.http_headers.list.item.name",
    "http_response.http_headers.list.item.name",
    "enrichments.list.item.name",
    "enrichments.list.item.type",
    "observables.list.item.name",
    "observables.list.item.type",
];
/// The Parquet codec (stated in the docs): Snappy, which Athena, Glue and Security Lake all read.
pub const COMPRESSION: &str = "snappy";

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn int32(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}

fn int64(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}

fn object(name: &str, fields: Vec<Field>) -> Field {
    Field::new(name, DataType::Struct(Fields::from(fields)), true)
}

fn list_of(name: &str, fields: Vec<Field>) -> Field {
    let item = Field::new("item", DataType::Struct(Fields::from(fields)), true);
    Field::new(name, DataType::List(Arc::new(item)), true)
}

fn header_fields() -> Vec<Field> {
    vec![utf8("name"), utf8("value")]
}

fn enrichment_fields() -> Vec<Field> {
    vec![
        utf8("name"),
        utf8("value"),
        utf8("type"),
        utf8("provider"),
        utf8("data"),
    ]
}

fn observable_fields() -> Vec<Field> {
    vec![utf8("name"), int32("type_id"), utf8("type"), utf8("value")]
}

/// The table's columns: OCSF attribute names, nested as in OCSF; JSON-typed attributes
/// (`unmapped`, `enrichments[].data`) are JSON text.
pub static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        int32("activity_id"),
        utf8("activity_name"),
        int32("category_uid"),
        utf8("category_name"),
        int32("class_uid"),
        utf8("class_name"),
        int64("type_uid"),
        utf8("type_name"),
        int32("severity_id"),
        utf8("severity"),
        int32("status_id"),
        utf8("status"),
        utf8("status_code"),
        int64("time"),
        object(
            "metadata",
            vec![
                utf8("version"),
                utf8("uid"),
                utf8("tenant_uid"),
                utf8("log_name"),
                object("product", vec![utf8("name"), utf8("vendor_name")]),
            ],
        ),
        object(
            "src_endpoint",
            vec![
                utf8("ip"),
                utf8("name"),
                utf8("hostname"),
                object("location", vec![utf8("country")]),
            ],
        ),
        object("dst_endpoint", vec![utf8("hostname"), utf8("name")]),
        object(
            "http_request",
            vec![
                utf8("http_method"),
                utf8("version"),
                utf8("user_agent"),
                object(
                    "url",
                    vec![
                        utf8("scheme"),
                        utf8("hostname"),
                        utf8("path"),
                        utf8("query_string"),
                        utf8("url_string"),
                    ],
                ),
                list_of("http_headers", header_fields()),
            ],
        ),
        object(
            "http_response",
            vec![
                int32("code"),
                int64("length"),
                int32("latency"),
                list_of("http_headers", header_fields()),
            ],
        ),
        object("tls", vec![utf8("version"), utf8("cipher")]),
        list_of("enrichments", enrichment_fields()),
        list_of("observables", observable_fields()),
        utf8("unmapped"),
    ]))
});

/// A struct column from its children, all rows valid unless `valid` says otherwise.
fn struct_array(
    fields: Vec<Field>,
    arrays: Vec<ArrayRef>,
    valid: Option<Vec<bool>>,
) -> Result<ArrayRef, OcsfError> {
    Ok(Arc::new(StructArray::try_new(
        Fields::from(fields),
        arrays,
        valid.map(NullBuffer::from),
    )?))
}

/// A list-of-struct column being built: its offsets, validity and the items' columns.
struct ListColumn {
    offsets: Vec<i32>,
    valid: Vec<bool>,
}

impl ListColumn {
    fn new() -> Self {
        ListColumn {
            offsets: vec![0],
            valid: Vec::new(),
        }
    }

    fn end_row(&mut self, items: usize, valid: bool) -> Result<(), OcsfError> {
        let last = self.offsets.last().copied().unwrap_or(0);
        let items = i32::try_from(items).map_err(|_| OcsfError::TooLarge)?;
        self.offsets
            .push(last.checked_add(items).ok_or(OcsfError::TooLarge)?);
        self.valid.push(valid);
        Ok(())
    }

    fn finish(&mut self, fields: Vec<Field>, items: Vec<ArrayRef>) -> Result<ArrayRef, OcsfError> {
        let item = Field::new("item", DataType::Struct(Fields::from(fields.clone())), true);
        let values = struct_array(fields, items, None)?;
        let offsets = OffsetBuffer::new(std::mem::replace(&mut self.offsets, vec![0]).into());
        let valid = NullBuffer::from(std::mem::take(&mut self.valid));
        Ok(Arc::new(ListArray::try_new(
            Arc::new(item),
            offsets,
            values,
            Some(valid),
        )?))
    }
}

#[derive(Default)]
struct HeaderColumns {
    name: StringBuilder,
    value: StringBuilder,
}

impl HeaderColumns {
    fn push(
        &mut self,
        list: &mut ListColumn,
        headers: &Option<Vec<Header<'_>>>,
    ) -> Result<(), OcsfError> {
        for h in headers.iter().flatten() {
            self.name.append_value(&h.name);
            self.value.append_value(&h.value);
        }
        list.end_row(headers.as_ref().map_or(0, Vec::len), headers.is_some())
    }

    fn finish(&mut self, list: &mut ListColumn) -> Result<ArrayRef, OcsfError> {
        list.finish(
            header_fields(),
            vec![Arc::new(self.name.finish()), Arc::new(self.value.finish())],
        )
    }
}

/// One batch of events, column by column.
struct Batch {
    rows: usize,
    activity_id: Int32Builder,
    activity_names: Vec<&'static str>,
    severity_id: Int32Builder,
    status_id: Int32Builder,
    status_code: StringBuilder,
    time: Int64Builder,
    uid: StringBuilder,
    src_ip: StringBuilder,
    src_name: StringBuilder,
    src_hostname: StringBuilder,
    src_country: StringBuilder,
    dst_hostname: StringBuilder,
    dst_name: StringBuilder,
    /// Per row: whether `url` is an object (OCSF needs its path or string).
    url_valid: Vec<bool>,
    http_method: StringBuilder,
    http_version: StringBuilder,
    user_agent: StringBuilder,
    url_scheme: StringBuilder,
    url_hostname: StringBuilder,
    url_path: StringBuilder,
    query_string: StringBuilder,
    url_string: StringBuilder,
    request_headers: (ListColumn, HeaderColumns),
    response_code: Int32Builder,
    response_length: Int64Builder,
    response_latency: Int32Builder,
    response_headers: (ListColumn, HeaderColumns),
    tls_valid: Vec<bool>,
    tls_version: StringBuilder,
    tls_cipher: StringBuilder,
    enrichments: ListColumn,
    enrichment_name: StringBuilder,
    enrichment_value: StringBuilder,
    enrichment_data: StringBuilder,
    observables: ListColumn,
    observable_name: StringBuilder,
    observable_type_id: Int32Builder,
    observable_type: StringBuilder,
    observable_value: StringBuilder,
    unmapped: StringBuilder,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            rows: 0,
            activity_id: Int32Builder::new(),
            activity_names: Vec::with_capacity(BATCH_ROWS),
            severity_id: Int32Builder::new(),
            status_id: Int32Builder::new(),
            status_code: StringBuilder::new(),
            time: Int64Builder::new(),
            uid: StringBuilder::new(),
            src_ip: StringBuilder::new(),
            src_name: StringBuilder::new(),
            src_hostname: StringBuilder::new(),
            src_country: StringBuilder::new(),
            dst_hostname: StringBuilder::new(),
            dst_name: StringBuilder::new(),
            url_valid: Vec::new(),
            http_method: StringBuilder::new(),
            http_version: StringBuilder::new(),
            user_agent: StringBuilder::new(),
            url_scheme: StringBuilder::new(),
            url_hostname: StringBuilder::new(),
            url_path: StringBuilder::new(),
            query_string: StringBuilder::new(),
            url_string: StringBuilder::new(),
            request_headers: (ListColumn::new(), HeaderColumns::default()),
            response_code: Int32Builder::new(),
            response_length: Int64Builder::new(),
            response_latency: Int32Builder::new(),
            response_headers: (ListColumn::new(), HeaderColumns::default()),
            tls_valid: Vec::new(),
            tls_version: StringBuilder::new(),
            tls_cipher: StringBuilder::new(),
            enrichments: ListColumn::new(),
            enrichment_name: StringBuilder::new(),
            enrichment_value: StringBuilder::new(),
            enrichment_data: StringBuilder::new(),
            observables: ListColumn::new(),
            observable_name: StringBuilder::new(),
            observable_type_id: Int32Builder::new(),
            observable_type: StringBuilder::new(),
            observable_value: StringBuilder::new(),
            unmapped: StringBuilder::new(),
        }
    }

    fn push(&mut self, e: &Event<'_>) -> Result<(), OcsfError> {
        self.rows += 1;
        self.activity_id.append_value(e.activity_id);
        self.activity_names.push(e.activity_name);
        self.severity_id.append_value(e.severity_id);
        self.status_id.append_value(e.status_id);
        match e.status_code {
            // Formatted straight into the column's buffer.
            Some(code) => {
                write!(self.status_code, "{code}").map_err(|_| OcsfError::TooLarge)?;
                self.status_code.append_value("");
            }
            None => self.status_code.append_null(),
        }
        self.time.append_value(e.time);
        self.uid.append_value(&e.uid);
        self.src_ip.append_option(e.src_ip.as_deref());
        self.src_name.append_option(e.src_name.as_deref());
        self.src_hostname.append_option(e.src_hostname.as_deref());
        self.src_country.append_option(e.src_country.as_deref());
        self.dst_hostname.append_option(e.dst_hostname.as_deref());
        self.dst_name.append_option(e.dst_name.as_deref());
        self.url_valid
            .push(e.url_path.is_some() || e.url_string.is_some());
        self.http_method.append_option(e.http_method.as_deref());
        self.http_version.append_option(e.http_version.as_deref());
        self.user_agent.append_option(e.user_agent.as_deref());
        self.url_scheme.append_option(e.url_scheme.as_deref());
        self.url_hostname.append_option(e.url_hostname.as_deref());
        self.url_path.append_option(e.url_path.as_deref());
        self.query_string.append_option(e.query_string());
        self.url_string.append_option(e.url_string.as_deref());
        let (list, columns) = &mut self.request_headers;
        columns.push(list, &e.request_headers)?;
        self.response_code.append_option(e.response_code);
        self.response_length.append_option(e.response_length);
        self.response_latency.append_option(e.response_latency);
        let (list, columns) = &mut self.response_headers;
        columns.push(list, &e.response_headers)?;
        self.tls_valid
            .push(e.tls_version.is_some() || e.tls_cipher.is_some());
        self.tls_version.append_option(e.tls_version.as_deref());
        self.tls_cipher.append_option(e.tls_cipher.as_deref());
        for Enrichment { name, value, data } in e.enrichments.iter().flatten() {
            self.enrichment_name.append_value(name);
            self.enrichment_value.append_value(value);
            self.enrichment_data.append_value(data);
        }
        self.enrichments.end_row(
            e.enrichments.as_ref().map_or(0, Vec::len),
            e.enrichments.is_some(),
        )?;
        let mut observables = 0;
        for Observable {
            name,
            type_id,
            type_name,
            value,
        } in e.observables()
        {
            self.observable_name.append_value(name);
            self.observable_type_id.append_value(type_id);
            self.observable_type.append_value(type_name);
            self.observable_value.append_value(value);
            observables += 1;
        }
        self.observables.end_row(observables, true)?;
        self.unmapped.append_option(e.unmapped.as_deref());
        Ok(())
    }

    /// The batch as a record batch; the builders start over.
    fn finish(&mut self, source: &Source) -> Result<RecordBatch, OcsfError> {
        let rows = std::mem::take(&mut self.rows);
        let constant = |text: &str| -> ArrayRef {
            let mut b = StringBuilder::with_capacity(rows, rows * text.len());
            (0..rows).for_each(|_| b.append_value(text));
            Arc::new(b.finish())
        };
        let constant_i32 =
            |n: i32| -> ArrayRef { Arc::new(arrow_array::Int32Array::from(vec![n; rows])) };
        let type_uid: ArrayRef = Arc::new(arrow_array::Int64Array::from_iter_values(
            self.activity_id
                .values_slice()
                .iter()
                .map(|a| i64::from(CLASS_UID) * 100 + i64::from(*a)),
        ));
        let activity_names = std::mem::take(&mut self.activity_names);
        let type_name: ArrayRef = Arc::new(arrow_array::StringArray::from_iter_values(
            self.activity_id
                .values_slice()
                .iter()
                .map(|a| type_name(*a)),
        ));
        let activity_name: ArrayRef =
            Arc::new(arrow_array::StringArray::from_iter_values(activity_names));
        let severity = {
            let mut b = StringBuilder::new();
            for id in self.severity_id.values_slice() {
                b.append_value(severity_name(*id));
            }
            Arc::new(b.finish()) as ArrayRef
        };
        let status = {
            let mut b = StringBuilder::new();
            for id in self.status_id.values_slice() {
                b.append_value(status_name(*id));
            }
            Arc::new(b.finish()) as ArrayRef
        };
        let metadata = struct_array(
            vec![
                utf8("version"),
                utf8("uid"),
                utf8("tenant_uid"),
                utf8("log_name"),
                object("product", vec![utf8("name"), utf8("vendor_name")]),
            ],
            vec![
                constant(OCSF_VERSION),
                Arc::new(self.uid.finish()),
                constant(&source.corp),
                constant(&source.site),
                struct_array(
                    vec![utf8("name"), utf8("vendor_name")],
                    vec![
                        constant(PRODUCT_NAME),
                        constant(crate::mapping::VENDOR_NAME),
                    ],
                    None,
                )?,
            ],
            None,
        )?;
        // A location is an object only with its country (OCSF needs one of its parts).
        let country = self.src_country.finish();
        let has_country: Vec<bool> = (0..rows).map(|i| country.is_valid(i)).collect();
        let src_endpoint = struct_array(
            vec![
                utf8("ip"),
                utf8("name"),
                utf8("hostname"),
                object("location", vec![utf8("country")]),
            ],
            vec![
                Arc::new(self.src_ip.finish()),
                Arc::new(self.src_name.finish()),
                Arc::new(self.src_hostname.finish()),
                struct_array(
                    vec![utf8("country")],
                    vec![Arc::new(country)],
                    Some(has_country),
                )?,
            ],
            None,
        )?;
        let dst_endpoint = struct_array(
            vec![utf8("hostname"), utf8("name")],
            vec![
                Arc::new(self.dst_hostname.finish()),
                Arc::new(self.dst_name.finish()),
            ],
            None,
        )?;
        let (list, columns) = &mut self.request_headers;
        let request_headers = columns.finish(list)?;
        let http_request = struct_array(
            vec![
                utf8("http_method"),
                utf8("version"),
                utf8("user_agent"),
                object(
                    "url",
                    vec![
                        utf8("scheme"),
                        utf8("hostname"),
                        utf8("path"),
                        utf8("query_string"),
                        utf8("url_string"),
                    ],
                ),
                list_of("http_headers", header_fields()),
            ],
            vec![
                Arc::new(self.http_method.finish()),
                Arc::new(self.http_version.finish()),
                Arc::new(self.user_agent.finish()),
                struct_array(
                    vec![
                        utf8("scheme"),
                        utf8("hostname"),
                        utf8("path"),
                        utf8("query_string"),
                        utf8("url_string"),
                    ],
                    vec![
                        Arc::new(self.url_scheme.finish()),
                        Arc::new(self.url_hostname.finish()),
                        Arc::new(self.url_path.finish()),
                        Arc::new(self.query_string.finish()),
                        Arc::new(self.url_string.finish()),
                    ],
                    Some(std::mem::take(&mut self.url_valid)),
                )?,
                request_headers,
            ],
            None,
        )?;
        let (list, columns) = &mut self.response_headers;
        let response_headers = columns.finish(list)?;
        let http_response = struct_array(
            vec![
                int32("code"),
                int64("length"),
                int32("latency"),
                list_of("http_headers", header_fields()),
            ],
            vec![
                Arc::new(self.response_code.finish()),
                Arc::new(self.response_length.finish()),
                Arc::new(self.response_latency.finish()),
                response_headers,
            ],
            None,
        )?;
        let tls = struct_array(
            vec![utf8("version"), utf8("cipher")],
            vec![
                Arc::new(self.tls_version.finish()),
                Arc::new(self.tls_cipher.finish()),
            ],
            Some(std::mem::take(&mut self.tls_valid)),
        )?;
        let enrichment_rows = self.enrichment_name.len();
        let enrichments = self.enrichments.finish(
            enrichment_fields(),
            vec![
                Arc::new(self.enrichment_name.finish()),
                Arc::new(self.enrichment_value.finish()),
                repeat(TAG_TYPE, enrichment_rows),
                repeat(TAG_PROVIDER, enrichment_rows),
                Arc::new(self.enrichment_data.finish()),
            ],
        )?;
        let observables = self.observables.finish(
            observable_fields(),
            vec![
                Arc::new(self.observable_name.finish()),
                Arc::new(self.observable_type_id.finish()),
                Arc::new(self.observable_type.finish()),
                Arc::new(self.observable_value.finish()),
            ],
        )?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.activity_id.finish()),
            activity_name,
            constant_i32(CATEGORY_UID),
            constant(CATEGORY_NAME),
            constant_i32(CLASS_UID),
            constant(CLASS_NAME),
            type_uid,
            type_name,
            Arc::new(self.severity_id.finish()),
            severity,
            Arc::new(self.status_id.finish()),
            status,
            Arc::new(self.status_code.finish()),
            Arc::new(self.time.finish()),
            metadata,
            src_endpoint,
            dst_endpoint,
            http_request,
            http_response,
            tls,
            enrichments,
            observables,
            Arc::new(self.unmapped.finish()),
        ];
        Ok(RecordBatch::try_new(SCHEMA.clone(), columns)?)
    }
}

fn repeat(text: &str, rows: usize) -> ArrayRef {
    let mut b = StringBuilder::with_capacity(rows, rows * text.len());
    (0..rows).for_each(|_| b.append_value(text));
    Arc::new(b.finish())
}

/// Streams events into one Parquet file on `sink`: row groups go out as they fill.
pub struct OcsfWriter<W: Write + Send> {
    writer: ArrowWriter<W>,
    batch: Batch,
    /// The JSON size of the records in `batch`.
    batch_bytes: usize,
    source: Source,
    records: u64,
}

impl<W: Write + Send> OcsfWriter<W> {
    pub fn new(sink: W, source: Source) -> Result<Self, OcsfError> {
        Self::with_row_group_rows(sink, source, ROW_GROUP_ROWS)
    }

    pub fn with_row_group_rows(
        sink: W,
        source: Source,
        row_group_rows: usize,
    ) -> Result<Self, OcsfError> {
        let properties = DICTIONARY_COLUMNS
            .iter()
            .fold(
                WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    // Min/max per column chunk is what Athena prunes by; per page costs CPU
                    // for nothing.
                    .set_statistics_enabled(EnabledStatistics::Chunk)
                    .set_max_row_group_row_count(Some(row_group_rows.max(1)))
                    .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
                    .set_data_page_size_limit(PAGE_BYTES)
                    .set_dictionary_page_size_limit(PAGE_BYTES)
                    .set_dictionary_enabled(false),
                |builder, path| {
                    let parts = path.split('.').map(str::to_string).collect();
                    builder.set_column_dictionary_enabled(ColumnPath::new(parts), true)
                },
            )
            .set_created_by(format!("sigsci-kit ocsf {}", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(OcsfWriter {
            writer: ArrowWriter::try_new(sink, SCHEMA.clone(), Some(properties))?,
            batch: Batch::new(),
            batch_bytes: 0,
            source,
            records: 0,
        })
    }

    /// Maps and appends one feed record (its JSON text).
    pub fn push_record(&mut self, raw: &str) -> Result<(), OcsfError> {
        self.batch.push(&Event::from_record(raw)?)?;
        self.batch_bytes += raw.len();
        self.records += 1;
        if self.batch.rows >= BATCH_ROWS || self.batch_bytes >= BATCH_BYTES {
            self.write_batch()?;
        }
        Ok(())
    }

    fn write_batch(&mut self) -> Result<(), OcsfError> {
        if self.batch.rows > 0 {
            let batch = self.batch.finish(&self.source)?;
            self.writer.write(&batch)?;
            if self.writer.memory_size() >= ROW_GROUP_MEMORY {
                self.writer.flush()?;
            }
        }
        self.batch_bytes = 0;
        Ok(())
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    /// Writes the last row group and the footer; returns the sink and the record count.
    pub fn finish(mut self) -> Result<(W, u64), OcsfError> {
        self.write_batch()?;
        let sink = self.writer.into_inner()?;
        Ok((sink, self.records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type};
    use arrow_array::{Array, StringArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn source() -> Source {
        Source {
            corp: "testcorp".into(),
            site: "www".into(),
        }
    }

    fn record(i: usize) -> String {
        let tags: Vec<String> = (0..i % 5)
            .map(|t| {
                format!(r#"{{"type":"T{t}","location":"QUERY","value":"v{t}","detector":"d"}}"#)
            })
            .collect();
        let ip = if i.is_multiple_of(3) {
            "2a02:1::1"
        } else {
            "10.0.0.1"
        };
        format!(
            r#"{{"id":"id-{i}","timestamp":"2026-11-26T08:00:{:02}Z","remoteIP":"{ip}","method":"GET","uri":"/p?q={i}","responseCode":200,"agentResponseCode":200,"headersIn":[["Host","h"],["X-Ü","✓ {i}"]],"headersOut":{},"tags":[{}]}}"#,
            i % 60,
            if i.is_multiple_of(2) {
                "null"
            } else {
                r#"[["Server","x"]]"#
            },
            tags.join(",")
        )
    }

    fn write(records: usize, row_group_rows: usize) -> Vec<u8> {
        let mut writer =
            OcsfWriter::with_row_group_rows(Vec::new(), source(), row_group_rows).unwrap();
        for i in 0..records {
            writer.push_record(&record(i)).unwrap();
        }
        let (bytes, count) = writer.finish().unwrap();
        assert_eq!(count, records as u64);
        bytes
    }

    #[test]
    fn events_read_back_in_order_with_every_column() {
        let bytes = bytes::Bytes::from(write(10_000, 3_000));
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .unwrap()
            .build()
            .unwrap();
        let mut row = 0;
        for batch in reader {
            let batch = batch.unwrap();
            assert_eq!(batch.schema(), SCHEMA.clone());
            let metadata = batch.column_by_name("metadata").unwrap().as_struct();
            let uid: &StringArray = metadata.column_by_name("uid").unwrap().as_string();
            let site: &StringArray = metadata.column_by_name("log_name").unwrap().as_string();
            let class = batch
                .column_by_name("class_uid")
                .unwrap()
                .as_primitive::<Int32Type>();
            let type_uid = batch
                .column_by_name("type_uid")
                .unwrap()
                .as_primitive::<Int64Type>();
            let request = batch.column_by_name("http_request").unwrap().as_struct();
            let headers = request
                .column_by_name("http_headers")
                .unwrap()
                .as_list::<i32>();
            let response = batch.column_by_name("http_response").unwrap().as_struct();
            let out = response
                .column_by_name("http_headers")
                .unwrap()
                .as_list::<i32>();
            let enrichments = batch
                .column_by_name("enrichments")
                .unwrap()
                .as_list::<i32>();
            for r in 0..batch.num_rows() {
                let i = row + r;
                assert_eq!(uid.value(r), format!("id-{i}"));
                assert_eq!(site.value(r), "www");
                assert_eq!(class.value(r), 4002);
                assert_eq!(type_uid.value(r), 400203);
                let h = headers.value(r);
                let values: &StringArray =
                    h.as_struct().column_by_name("value").unwrap().as_string();
                assert_eq!(values.value(1), format!("✓ {i}"));
                assert_eq!(out.is_null(r), i.is_multiple_of(2));
                assert_eq!(enrichments.value(r).len(), i % 5);
            }
            row += batch.num_rows();
        }
        assert_eq!(row, 10_000);
        // Row groups went out as they filled.
        let file = SerializedFileReader::new(bytes).unwrap();
        assert_eq!(file.metadata().num_row_groups(), 4);
        assert_eq!(
            file.metadata().row_group(0).column(0).compression(),
            Compression::SNAPPY
        );
    }

    #[test]
    fn only_the_repeating_columns_are_dictionary_encoded() {
        let file = SerializedFileReader::new(bytes::Bytes::from(write(5_000, 5_000))).unwrap();
        let group = file.metadata().row_group(0);
        let encoded: Vec<(String, bool)> = group
            .columns()
            .iter()
            .map(|column| {
                let dictionary = column
                    .encodings()
                    .any(|encoding| encoding == parquet::basic::Encoding::RLE_DICTIONARY);
                (column.column_path().string(), dictionary)
            })
            .collect();
        for path in DICTIONARY_COLUMNS {
            assert!(
                encoded.iter().any(|(name, _)| name == path),
                "{path} is not a column: {encoded:?}"
            );
        }
        for (path, dictionary) in &encoded {
            assert_eq!(
                *dictionary,
                DICTIONARY_COLUMNS.contains(&path.as_str()),
                "{path}"
            );
        }
        // Statistics per chunk, for pruning.
        let uid = group
            .columns()
            .iter()
            .find(|column| column.column_path().string() == "metadata.uid")
            .unwrap();
        assert!(
            uid.statistics()
                .is_some_and(|s| s.min_bytes_opt().is_some())
        );
    }

    /// Incompressible text, so the encoded size is what the rows take.
    fn noise(state: &mut u64, len: usize) -> String {
        (0..len)
            .map(|_| {
                *state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                char::from(b'a' + ((*state >> 33) % 26) as u8)
            })
            .collect()
    }

    fn with_header_value(i: usize, value: &str) -> String {
        record(i).replace(r#""X-Ü","✓"#, &format!(r#""X-Ü","{value} ✓"#))
    }

    #[test]
    fn huge_rows_end_a_row_group_at_its_byte_limit() {
        let mut state = 0x2545_f491_u64;
        let mut writer = OcsfWriter::new(Vec::new(), source()).unwrap();
        for i in 0..400 {
            let raw = with_header_value(i, &noise(&mut state, 64 * 1024));
            writer.push_record(&raw).unwrap();
        }
        let (bytes, _) = writer.finish().unwrap();
        let file = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        // 400 rows of 64 KiB headers are 25 MiB: several row groups, none far above the limit.
        assert!(file.metadata().num_row_groups() >= 4);
        for group in file.metadata().row_groups() {
            assert!(
                group.total_byte_size() < (ROW_GROUP_BYTES * 2) as i64,
                "{}",
                group.total_byte_size()
            );
        }
    }

    #[test]
    fn row_groups_end_at_the_writers_memory_limit() {
        // 1 KiB per row: 8192 rows would hold 8 MiB; the writer stops each row group near 1.5 MiB.
        let mut state = 0x9e37_79b9_u64;
        let mut writer = OcsfWriter::new(Vec::new(), source()).unwrap();
        for i in 0..ROW_GROUP_ROWS {
            let raw = with_header_value(i, &noise(&mut state, 1024));
            writer.push_record(&raw).unwrap();
        }
        let (bytes, rows) = writer.finish().unwrap();
        assert_eq!(rows, ROW_GROUP_ROWS as u64);
        let file = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        assert!(file.metadata().num_row_groups() >= 3);
        for group in file.metadata().row_groups() {
            assert!(
                group.compressed_size() <= (ROW_GROUP_MEMORY + ROW_GROUP_MEMORY / 4) as i64,
                "{} rows, {} bytes",
                group.num_rows(),
                group.compressed_size()
            );
        }
    }

    #[test]
    fn a_bad_record_fails_the_file() {
        let mut writer = OcsfWriter::new(Vec::new(), source()).unwrap();
        writer.push_record(&record(1)).unwrap();
        let error = writer.push_record("{\"id\": 3}").unwrap_err();
        assert!(error.to_string().contains("`id`"), "{error}");
    }
}

#[cfg(test)]
mod glue {
    use super::*;

    /// The Hive (Glue/Athena) type of an Arrow type of the schema.
    fn hive(data_type: &DataType) -> String {
        match data_type {
            DataType::Utf8 => "string".into(),
            DataType::Int32 => "int".into(),
            DataType::Int64 => "bigint".into(),
            DataType::Struct(fields) => format!(
                "struct<{}>",
                fields
                    .iter()
                    .map(|f| format!("{}:{}", f.name(), hive(f.data_type())))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            DataType::List(item) => format!("array<{}>", hive(item.data_type())),
            other => panic!("no Hive type for {other}"),
        }
    }

    #[test]
    fn the_glue_table_has_the_parquet_schema() {
        let terraform = include_str!("../../../terraform/ocsf.tf");
        let columns: Vec<String> = SCHEMA
            .fields()
            .iter()
            .map(|f| format!("[\"{}\", \"{}\"],", f.name(), hive(f.data_type())))
            .collect();
        let listed: Vec<String> = terraform
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("[\"") && l.ends_with("],"))
            .map(str::to_string)
            .collect();
        assert_eq!(listed, columns, "terraform/ocsf.tf's columns");
    }
}
