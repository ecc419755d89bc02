//! Reading an ingest [`Source`] into a data frame: files here, with errors that name the file or URL; objects,
//! HTTP APIs and SQL queries in their own modules.

use std::fs::File;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use polars::io::mmap::MmapBytesReader;
use polars::prelude::*;
use sluice_core::ops_spec::{Source, url_scheme};

use crate::error::{OpsError, Result};
use crate::http::{RetryPolicy, read_http};
use crate::object::fetch;
use crate::sql::{Above, expect_postgres, read_query};
use crate::task::{NamedConnection, OpContext};

/// Rows read to guess CSV column types: enough that a float appearing after a run of integers is seen, without
/// scanning a large file twice.
const CSV_INFER_ROWS: usize = 10_000;

/// Read `source`: a relative path is taken from the DAGs folder, connections from the context. `watermark` is
/// the incremental load's column: a source that can filter by it (a SQL query) reads only rows above the context's
/// previous mark.
pub fn read_source(source: &Source, ctx: &OpContext<'_>, watermark: Option<&str>) -> Result<DataFrame> {
    let file = |path: &str| {
        let connection = source.connection().map(|id| ctx.connection(id)).transpose()?;
        Input::open(ctx.base_dir, path, connection)
    };
    match source {
        Source::Csv { path, delimiter, null_values, .. } => {
            let input = file(path)?;
            let separator = match delimiter {
                None => b',',
                Some(c) if c.is_ascii() => *c as u8,
                Some(c) => return Err(OpsError::Invalid(format!("CSV delimiter {c:?} is not an ASCII character"))),
            };
            read_csv(input.reader()?, separator, null_values).map_err(|e| csv_error(&input, separator, e))
        }
        Source::Jsonl { path, .. } => {
            let input = file(path)?;
            JsonReader::new(input.reader()?)
                .with_json_format(JsonFormat::JsonLines)
                .finish()
                .map_err(|e| read_error(input.name(), e.to_string()))
        }
        Source::Parquet { path, .. } => {
            let input = file(path)?;
            ParquetReader::new(input.reader()?).finish().map_err(|e| read_error(input.name(), e.to_string()))
        }
        Source::Http(http) => {
            let connection = http.connection.as_deref().map(|id| ctx.connection(id)).transpose()?;
            read_http(http, connection, RetryPolicy::default(), ctx.log)
        }
        Source::Postgres(query) | Source::Sql(query) => {
            let conn = ctx.connection(&query.connection)?;
            if let Source::Postgres(_) = source {
                expect_postgres(conn)?;
            }
            let above = watermark.zip(ctx.previous_watermark).map(|(column, mark)| Above { column, mark });
            read_query(query, conn, above, ctx.log)
        }
    }
}

/// A file source's content: a local file (read in place), or an object fetched whole from its store.
enum Input {
    Local(PathBuf),
    Fetched { url: PathBuf, bytes: Vec<u8> },
}

impl Input {
    /// A relative local path is taken from `base_dir`.
    fn open(base_dir: &Path, path: &str, connection: Option<NamedConnection<'_>>) -> Result<Input> {
        if url_scheme(path).is_some() {
            return Ok(Input::Fetched { url: path.into(), bytes: fetch(path, connection)? });
        }
        let path = base_dir.join(path);
        if path.is_file() { Ok(Input::Local(path)) } else { Err(OpsError::FileNotFound(path)) }
    }

    /// The file or URL, for messages.
    fn name(&self) -> &Path {
        match self {
            Input::Local(path) | Input::Fetched { url: path, .. } => path,
        }
    }

    fn reader(&self) -> Result<Box<dyn MmapBytesReader + '_>> {
        Ok(match self {
            Input::Local(path) => Box::new(File::open(path).map_err(OpsError::io("cannot open", path))?),
            Input::Fetched { bytes, .. } => Box::new(Cursor::new(bytes.as_slice())),
        })
    }

    fn bytes(&self) -> Option<std::borrow::Cow<'_, [u8]>> {
        match self {
            Input::Local(path) => std::fs::read(path).ok().map(Into::into),
            Input::Fetched { bytes, .. } => Some(bytes.as_slice().into()),
        }
    }
}

fn read_csv(reader: Box<dyn MmapBytesReader + '_>, separator: u8, null_values: &[String]) -> PolarsResult<DataFrame> {
    let nulls = NullValues::AllColumns(null_values.iter().map(|v| v.as_str().into()).collect());
    let parse = CsvParseOptions::default().with_separator(separator).with_null_values(Some(nulls));
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(CSV_INFER_ROWS))
        .with_parse_options(parse)
        .into_reader_with_file_handle(reader)
        .finish()
}

fn read_error(path: &Path, message: String) -> OpsError {
    OpsError::Read { path: path.to_owned(), message }
}

/// polars does not say on which line a CSV record has a wrong number of fields; find it, so the user can fix it.
fn csv_error(input: &Input, separator: u8, err: PolarsError) -> OpsError {
    let line = input.bytes().and_then(|bytes| ragged_line(&bytes, separator));
    read_error(input.name(), line.map_or_else(|| err.to_string(), |n| format!("line {n}: {err}")))
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
