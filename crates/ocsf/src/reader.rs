//! Reads back what [`crate::OcsfWriter`] wrote, as far as checking a part needs: the row count
//! the footer records and every event's `metadata.uid`.

use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::OcsfError;

/// What a Parquet part holds, read through its footer and the `metadata.uid` column alone.
#[derive(Clone, Debug, Default)]
pub struct PartContents {
    /// Rows the footer records.
    pub footer_rows: u64,
    /// The events' ids, in the order of the file.
    pub uids: Vec<String>,
}

/// Parses the footer and reads `metadata.uid` of every row; a truncated or altered file fails here.
pub fn read_uids(body: Bytes) -> Result<PartContents, OcsfError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(body)?;
    let footer_rows = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let schema = builder.parquet_schema();
    let Some(leaf) = schema
        .columns()
        .iter()
        .position(|column| column.path().string() == "metadata.uid")
    else {
        return Err(OcsfError::Record("no metadata.uid column".into()));
    };
    let mask = ProjectionMask::leaves(schema, [leaf]);
    let mut uids = Vec::with_capacity(usize::try_from(footer_rows).unwrap_or(0));
    for batch in builder.with_projection(mask).build()? {
        let batch = batch?;
        let uid = batch
            .column_by_name("metadata")
            .and_then(|m| m.as_any().downcast_ref::<arrow_array::StructArray>())
            .and_then(|m| m.column_by_name("uid"))
            .and_then(|u| u.as_any().downcast_ref::<arrow_array::StringArray>())
            .ok_or_else(|| OcsfError::Record("metadata.uid is not a string column".into()))?;
        uids.extend(uid.iter().map(|v| v.unwrap_or_default().to_string()));
    }
    Ok(PartContents { footer_rows, uids })
}
