//! Reading an ingest [`Source`] into a data frame: files here, with errors that name the file; HTTP APIs and
//! PostgreSQL queries in their own modules.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use sluice_core::ops_spec::Source;

use crate::error::{OpsError, Result};
use crate::http::{RetryPolicy, read_http};
use crate::postgres::{Above, read_postgres};
use crate::task::OpContext;

/// Rows read to guess CSV column types: enough that a float appearing after a run of integers is seen, without
/// scanning a large file twice.
const CSV_INFER_ROWS: usize = 10_000;

/// Read `source`: a relative path is taken from the DAGs folder, connections from the context. `watermark` is
/// the incremental load's column: a source that can filter by it (PostgreSQL) reads only rows above the context's
/// previous mark.
pub fn read_source(source: &Source, ctx: &OpContext<'_>, watermark: Option<&str>) -> Result<DataFrame> {
    match source {
        Source::Csv { path, delimiter, null_values } => {
            let path = existing(ctx.base_dir, path)?;
            let separator = match delimiter {
                None => b',',
                Some(c) if c.is_ascii() => *c as u8,
                Some(c) => return Err(OpsError::Invalid(format!("CSV delimiter {c:?} is not an ASCII character"))),
            };
            read_csv(&path, separator, null_values).map_err(|e| csv_error(&path, separator, e))
        }
        Source::Jsonl { path } => {
            let path = existing(ctx.base_dir, path)?;
            JsonReader::new(open(&path)?)
                .with_json_format(JsonFormat::JsonLines)
                .finish()
                .map_err(|e| read_error(&path, e.to_string()))
        }
        Source::Parquet { path } => {
            let path = existing(ctx.base_dir, path)?;
            ParquetReader::new(open(&path)?).finish().map_err(|e| read_error(&path, e.to_string()))
        }
        Source::Http(http) => {
            let connection = http.connection.as_deref().map(|id| ctx.connection(id)).transpose()?;
            read_http(http, connection, RetryPolicy::default(), ctx.log)
        }
        Source::Postgres(pg) => {
            let above = watermark.zip(ctx.previous_watermark).map(|(column, mark)| Above { column, mark });
            read_postgres(pg, ctx.connection(&pg.connection)?, above, ctx.log)
        }
    }
}

fn existing(base_dir: &Path, path: &str) -> Result<PathBuf> {
    let path = base_dir.join(path);
    if path.is_file() { Ok(path) } else { Err(OpsError::FileNotFound(path)) }
}

fn read_csv(path: &Path, separator: u8, null_values: &[String]) -> PolarsResult<DataFrame> {
    let nulls = NullValues::AllColumns(null_values.iter().map(|v| v.as_str().into()).collect());
    let parse = CsvParseOptions::default().with_separator(separator).with_null_values(Some(nulls));
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(CSV_INFER_ROWS))
        .with_parse_options(parse)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))?
        .finish()
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(OpsError::io("cannot open", path))
}

fn read_error(path: &Path, message: String) -> OpsError {
    OpsError::Read { path: path.to_owned(), message }
}

/// polars does not say on which line a CSV record has a wrong number of fields; find it, so the user can fix it.
fn csv_error(path: &Path, separator: u8, err: PolarsError) -> OpsError {
    let line = std::fs::read(path).ok().and_then(|bytes| ragged_line(&bytes, separator));
    read_error(path, line.map_or_else(|| err.to_string(), |n| format!("line {n}: {err}")))
}

/// The line where the first record with a field count other than the header's starts. Quoted fields may hold
/// separators, doubled quotes and newlines; blank lines are skipped, as polars does.
fn ragged_line(bytes: &[u8], separator: u8) -> Option<usize> {
    let mut header: Option<usize> = None;
    // A record with a field count unlike the header's (the first record is the header).
    let mut ragged = |fields: usize| *header.get_or_insert(fields) != fields;
    let (mut fields, mut blank, mut quoted) = (1, true, false);
    let (mut line, mut record_line) = (1, 1);
    for &b in bytes {
        match b {
            b'\n' if !quoted => {
                if !blank && ragged(fields) {
                    return Some(record_line);
                }
                line += 1;
                (fields, blank, record_line) = (1, true, line);
                continue;
            }
            b'\n' => line += 1,
            b'"' => quoted = !quoted,
            b'\r' => continue,
            b if b == separator && !quoted => fields += 1,
            _ => {}
        }
        blank = false;
    }
    (!blank && ragged(fields)).then_some(record_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ragged_line_table() {
        let rows: [(&str, Option<usize>); 7] = [
            ("a,b\n1,2\n3,4\n", None),
            ("a,b\n1,2\n3,4,5\n", Some(3)),
            ("a,b\n1\n", Some(2)),
            ("a,b\n1,2\n\n3,4\n5,6,7", Some(5)),
            ("a,b\n\"x,y\",2\n\"multi\nline\",3\n4,5,6\n", Some(5)),
            ("a,b\r\n1,2\r\n3,4\r\n", None),
            ("a;b\n1;2;3\n", Some(2)),
        ];
        for (csv, want) in rows {
            let separator = if csv.contains(';') { b';' } else { b',' };
            assert_eq!(ragged_line(csv.as_bytes(), separator), want, "{csv:?}");
        }
    }
}
