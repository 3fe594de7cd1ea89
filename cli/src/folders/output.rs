//! Rows, the summary and the output formats.
//!
//! Names are written losslessly: a path that is valid UTF-8 is written as it is; one
//! that is not is written with U+FFFD in place of the invalid bytes (readable, but not
//! unique) and its raw bytes, as lowercase hex, in `img0_hex` / `img1_hex` (JSON keys
//! present only then; CSV columns always there, empty for UTF-8 names). The text format
//! writes the raw bytes themselves, with control characters and backslashes escaped so
//! that one pair is always one line.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::args::{FolderArgs, ListFormat};
use crate::error::{CliError, Context};

/// One pair's result: a distance (finite) or the reason it has none.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(super) struct Row {
    pub(super) index: usize,
    pub(super) img0: String,
    pub(super) img1: String,
    #[serde(default, deserialize_with = "wide_f32")]
    pub(super) distance: Option<f32>,
    pub(super) error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) spatial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) img0_hex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) img1_hex: Option<String>,
}

/// A distance read back from a partial file: read as f64 so that a number beyond f32's
/// range (an edited file) becomes infinite, a distance no run writes, rather than a line
/// that is not a row.
fn wide_f32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.map(|v| v as f32))
}

impl Row {
    /// A row for the pair, with neither distance nor error yet.
    pub(super) fn new(index: usize, a: &Path, b: &Path) -> Row {
        let (img0, img0_hex) = name(a);
        let (img1, img1_hex) = name(b);
        Row {
            index,
            img0,
            img1,
            distance: None,
            error: None,
            spatial: None,
            img0_hex,
            img1_hex,
        }
    }

    /// Whether two rows are about the same two files.
    pub(super) fn same_pair(&self, other: &Row) -> bool {
        (&self.img0, &self.img0_hex, &self.img1, &self.img1_hex)
            == (&other.img0, &other.img0_hex, &other.img1, &other.img1_hex)
    }

    /// The first image's path, byte for byte.
    fn path0(&self) -> PathBuf {
        path(&self.img0, self.img0_hex.as_deref())
    }

    fn path1(&self) -> PathBuf {
        path(&self.img1, self.img1_hex.as_deref())
    }
}

/// A path as written in rows: the string, and the raw bytes in hex when the path is not
/// valid UTF-8.
pub(super) fn name(path: &Path) -> (String, Option<String>) {
    use std::os::unix::ffi::OsStrExt;
    match path.to_str() {
        Some(s) => (s.to_string(), None),
        None => {
            let hex = path
                .as_os_str()
                .as_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            (path.to_string_lossy().into_owned(), Some(hex))
        }
    }
}

/// The path a row names.
fn path(name: &str, hex: Option<&str>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = hex.and_then(|h| {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()
    });
    match bytes {
        Some(bytes) => PathBuf::from(std::ffi::OsString::from_vec(bytes)),
        None => PathBuf::from(name),
    }
}

#[derive(Serialize)]
struct Summary {
    count: usize,
    failed: usize,
    mean: Option<f64>,
    median: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
}

/// Statistics over the rows with a (finite) distance; failed rows are counted apart.
fn summarize(rows: &[Row]) -> Summary {
    let mut d: Vec<f64> = rows
        .iter()
        .filter(|r| r.error.is_none())
        .filter_map(|r| r.distance)
        .filter(|d| d.is_finite())
        .map(f64::from)
        .collect();
    d.sort_by(f64::total_cmp);
    let n = d.len();
    let median = match n {
        0 => None,
        _ if n % 2 == 1 => Some(d[n / 2]),
        _ => Some((d[n / 2 - 1] + d[n / 2]) / 2.0),
    };
    Summary {
        count: n,
        failed: rows.len() - n,
        mean: (n > 0).then(|| d.iter().sum::<f64>() / n as f64),
        median,
        min: d.first().copied(),
        max: d.last().copied(),
    }
}

/// A name as the text format writes it: control characters and the backslash escaped
/// (`\t`, `\n`, `\r`, `\\`, else `\xHH`), so that a row is always one line of three
/// tab-separated fields whatever the file names hold; every other byte as it is.
fn escape_into(buf: &mut Vec<u8>, name: &[u8]) {
    for &b in name {
        match b {
            b'\t' => buf.extend_from_slice(b"\\t"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            0..=0x1f | 0x7f => buf.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            _ => buf.push(b),
        }
    }
}

/// The whole output of a run, in its format.
pub(super) fn render(
    rows: &[Row],
    unmatched: &BTreeMap<String, Vec<PathBuf>>,
    args: &FolderArgs,
) -> Result<Vec<u8>, CliError> {
    let mut buf: Vec<u8> = Vec::new();
    match args.format {
        ListFormat::Text => render_text(&mut buf, rows).context("cannot write the output")?,
        ListFormat::Csv => render_csv(&mut buf, rows)?,
        ListFormat::Json => {
            let unmatched: BTreeMap<&String, Vec<String>> = unmatched
                .iter()
                .map(|(k, v)| {
                    (
                        k,
                        v.iter().map(|p| p.to_string_lossy().into_owned()).collect(),
                    )
                })
                .collect();
            let out = serde_json::json!({
                "net": args.model.net,
                "variant": args.model.variant,
                "lin": args.model.lin,
                "shard": args.shard.map(|(i, n)| format!("{i}/{n}")),
                "results": rows,
                "summary": summarize(rows),
                "unmatched": unmatched,
            });
            serde_json::to_writer_pretty(&mut buf, &out).context("cannot write the output")?;
            buf.push(b'\n');
        }
        ListFormat::Jsonl => {
            for r in rows {
                serde_json::to_writer(&mut buf, r).context("cannot write the output")?;
                buf.push(b'\n');
            }
        }
    }
    Ok(buf)
}

/// The text format: one line per distance, then the summary.
fn render_text(buf: &mut Vec<u8>, rows: &[Row]) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    for r in rows.iter().filter(|r| r.error.is_none()) {
        let Some(d) = r.distance else { continue };
        write!(buf, "{d:.6}\t")?;
        escape_into(buf, r.path0().as_os_str().as_bytes());
        buf.push(b'\t');
        escape_into(buf, r.path1().as_os_str().as_bytes());
        buf.push(b'\n');
    }
    let summary = summarize(rows);
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.6}"));
    writeln!(
        buf,
        "# count {} failed {} mean {} median {} min {} max {}",
        summary.count,
        summary.failed,
        f(summary.mean),
        f(summary.median),
        f(summary.min),
        f(summary.max)
    )
}

/// The CSV format: every row, failed ones with their error.
fn render_csv(buf: &mut Vec<u8>, rows: &[Row]) -> Result<(), CliError> {
    let mut w = csv::Writer::from_writer(buf);
    w.write_record([
        "index", "img0", "img1", "distance", "error", "spatial", "img0_hex", "img1_hex",
    ])?;
    for r in rows {
        w.write_record([
            r.index.to_string(),
            r.img0.clone(),
            r.img1.clone(),
            r.distance.map(|d| d.to_string()).unwrap_or_default(),
            r.error.clone().unwrap_or_default(),
            r.spatial.clone().unwrap_or_default(),
            r.img0_hex.clone().unwrap_or_default(),
            r.img1_hex.clone().unwrap_or_default(),
        ])?;
    }
    w.flush().context("cannot write the output")
}
