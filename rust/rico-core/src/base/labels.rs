//! Labels of patches, and the labels table written beside the LMDB database.
//!
//! # The labels table (`labels.csv`)
//!
//! A conversion whose spec has a [`LabelRule`] writes `labels.csv` into the target directory,
//! beside `data.mdb`:
//!
//! - UTF-8 CSV, `\n` line ends, fields quoted (RFC 4180) only when they hold `,`, `"` or a line
//!   break;
//! - header `key,<label 1>,...,<label n>`;
//! - one row per record of the database, in key order (the order of an LMDB cursor); a
//!   patch left out with `skip_invalid` has no row;
//! - each label column is `0` or `1` (multi-hot; one-hot when each patch has one label).
//!
//! Label columns: for label tables read from the source (MLRSNet), the label names and order
//! of the source tables' header; for a class folder (image-folder), one column per class folder
//! name, in order of first appearance in sorted source-path order.
//! `pandas.read_csv(path, index_col="key", dtype={"key": str})` reads it.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex::Regex;

use crate::base::error::{Error, Result};

pub use crate::base::layout::LABELS_TABLE;

/// Where the labels of a patch come from.
#[derive(Clone, Debug, Default)]
pub enum LabelRule {
    /// No labels; no table is written.
    #[default]
    None,
    /// One label per patch: the value of this named group of the pattern (e.g. the class folder).
    Group(String),
    /// Multi-hot rows of CSV tables inside the source tree: every file whose relative path
    /// matches `tables` is a table whose first column names an image file and whose other
    /// columns (0/1) are labels, named by the header. A patch's row is the one whose first
    /// column equals the pattern's group `row` (e.g. the image file name with its extension).
    /// Every table must have the same header.
    Tables {
        /// Matches the relative paths of the tables in the source tree.
        tables: Regex,
        /// The pattern's named group that gives a patch's row (its first column's value).
        row: String,
    },
}

/// The labels of one patch: which of `names` apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Labels {
    /// Label names; shared by every patch read from the same tables.
    pub names: Arc<[String]>,
    /// `values[i]` says whether `names[i]` applies.
    pub values: Vec<bool>,
}

impl Labels {
    /// One label that applies.
    pub fn one(name: &str) -> Labels {
        Labels {
            names: vec![name.to_string()].into(),
            values: vec![true],
        }
    }
}

/// Rows of the label tables of one source, by the value of their first column.
#[derive(Debug)]
pub struct TableRows {
    names: Arc<[String]>,
    rows: HashMap<String, (usize, Vec<bool>)>, // row name -> (index of the table, values)
    tables: Vec<PathBuf>,
}

impl TableRows {
    /// Reads every table: `files` are the tables' paths, in sorted order.
    pub fn read(files: &[PathBuf]) -> Result<TableRows> {
        let mut out = TableRows {
            names: Arc::from(Vec::new()),
            rows: HashMap::new(),
            tables: Vec::new(),
        };
        for (index, path) in files.iter().enumerate() {
            let text = fs::read(path)
                .map_err(|e| Error::data(format!("cannot read the labels table: {e}")).at(path))?;
            let text = String::from_utf8(text)
                .map_err(|_| Error::data("the labels table is not UTF-8 text").at(path))?;
            let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
            let mut lines = text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty());
            let Some((_, header)) = lines.next() else {
                return Err(Error::data(
                    "the labels table is empty; expected a header `image,<label>,...`",
                )
                .at(path));
            };
            let header =
                split_csv_line(header).map_err(|e| Error::data(format!("line 1: {e}")).at(path))?;
            if header.len() < 2 {
                return Err(Error::data(
                    "the labels table's header has no label column; expected `image,<label>,...`",
                )
                .at(path));
            }
            let names: Vec<String> = header[1..].iter().map(|n| n.trim().to_string()).collect();
            if index == 0 {
                out.names = names.into();
            } else if names[..] != out.names[..] {
                return Err(Error::data(format!(
                    "the labels table's header differs from that of {}",
                    out.tables[0].display()
                ))
                .at(path)
                .hint(
                    "every label table of a dataset must list the same labels in the same order",
                ));
            }
            out.tables.push(path.clone());
            for (n, line) in lines {
                let fields = split_csv_line(line)
                    .map_err(|e| Error::data(format!("line {}: {e}", n + 1)).at(path))?;
                if fields.len() != header.len() {
                    return Err(Error::data(format!(
                        "line {} has {} fields, the header {}",
                        n + 1,
                        fields.len(),
                        header.len()
                    ))
                    .at(path));
                }
                let mut values = Vec::with_capacity(fields.len() - 1);
                for (field, name) in fields[1..].iter().zip(out.names.iter()) {
                    values.push(match field.trim() {
                        "0" => false,
                        "1" => true,
                        other => {
                            return Err(Error::data(format!(
                                "line {}: label {name:?} is {other:?}; labels must be 0 or 1",
                                n + 1
                            ))
                            .at(path))
                        }
                    });
                }
                let row = fields[0].trim().to_string();
                if let Some((other, _)) = out.rows.insert(row.clone(), (index, values)) {
                    return Err(Error::data(format!(
                        "the labels of {row:?} are given twice: here (line {}) and in {}",
                        n + 1,
                        out.tables[other].display()
                    ))
                    .at(path)
                    .hint("each image must have exactly one labels row"));
                }
            }
        }
        Ok(out)
    }

    /// The labels of the row named `row`; `image` is the patch's file, for the error.
    pub fn get(&self, row: &str, image: &Path) -> Result<Labels> {
        match self.rows.get(row) {
            Some((_, values)) => Ok(Labels {
                names: self.names.clone(),
                values: values.clone(),
            }),
            None => {
                let tables: Vec<String> = self
                    .tables
                    .iter()
                    .map(|t| t.display().to_string())
                    .collect();
                let shown = if tables.len() > 3 {
                    format!("{}, ... ({} tables)", tables[..3].join(", "), tables.len())
                } else {
                    tables.join(", ")
                };
                Err(Error::data(format!("no labels row for {row:?} in the label tables ({shown})"))
                    .at(image)
                    .hint("rico does not guess labels: add the image's row to its category's table, or remove the image"))
            }
        }
    }

    /// How many tables were read.
    pub fn table_count(&self) -> usize {
        self.tables.len()
    }
}

/// Splits one CSV line (RFC 4180 quoting; no line breaks inside fields).
fn split_csv_line(line: &str) -> std::result::Result<Vec<String>, String> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
        } else if c == '"' && at_start {
            quoted = true;
            at_start = false;
        } else if c == ',' {
            fields.push(std::mem::take(&mut field));
            at_start = true;
        } else {
            field.push(c);
            at_start = false;
        }
    }
    if quoted {
        return Err("a quoted field is not closed".to_string());
    }
    fields.push(field);
    Ok(fields)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The labels table's text; `rows` are (key, labels) in source order, which gives the order
/// of the label columns (first appearance); rows are written in key order. See the module docs.
pub fn table_text<'a>(rows: impl IntoIterator<Item = (&'a str, &'a Labels)>) -> String {
    let mut columns: Vec<&str> = Vec::new();
    let mut column_of: HashMap<&str, usize> = HashMap::new();
    let mut by_key: BTreeMap<&str, &Labels> = BTreeMap::new();
    for (key, labels) in rows {
        for name in labels.names.iter() {
            if !column_of.contains_key(name.as_str()) {
                column_of.insert(name, columns.len());
                columns.push(name);
            }
        }
        by_key.insert(key, labels);
    }
    let mut text = String::from("key");
    for c in &columns {
        text.push(',');
        text.push_str(&csv_field(c));
    }
    text.push('\n');
    let mut row = vec![false; columns.len()];
    for (key, labels) in by_key {
        row.iter_mut().for_each(|v| *v = false);
        for (name, &value) in labels.names.iter().zip(&labels.values) {
            row[column_of[name.as_str()]] |= value;
        }
        text.push_str(&csv_field(key));
        for &v in &row {
            text.push_str(if v { ",1" } else { ",0" });
        }
        text.push('\n');
    }
    text
}

/// Writes the labels table into `target` (through a temporary file, so that a reader never sees
/// half a table).
pub fn write_table<'a>(
    target: &Path,
    rows: impl IntoIterator<Item = (&'a str, &'a Labels)>,
) -> Result<PathBuf> {
    let path = target.join(LABELS_TABLE);
    let tmp = target.join(format!("{LABELS_TABLE}.tmp"));
    let text = table_text(rows);
    fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|_| f.sync_all()))
        .and_then(|_| fs::rename(&tmp, &path))
        .map_err(|e| Error::output(format!("cannot write the labels table: {e}")).at(&path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_split_with_quotes() {
        assert_eq!(
            split_csv_line("a,b c,\"d,\"\"e\"\"\",\r").unwrap(),
            vec!["a", "b c", "d,\"e\"", ""]
        );
        assert!(split_csv_line("\"open").is_err());
    }

    #[test]
    fn table_columns_follow_first_appearance_and_rows_follow_keys() {
        let a = Labels::one("river");
        let b = Labels::one("forest");
        let c = Labels::one("river");
        let text = table_text([("z1", &a), ("b2", &b), ("a3", &c)]);
        assert_eq!(text, "key,river,forest\na3,1,0\nb2,0,1\nz1,1,0\n");
    }

    #[test]
    fn tables_are_read_and_rows_looked_up() {
        let dir = std::env::temp_dir().join(format!("rico-labels-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let t1 = dir.join("a.csv");
        let t2 = dir.join("b.csv");
        fs::write(
            &t1,
            "\u{feff}image,bare soil,harbor&port\r\na_1.jpg,1,0\r\n",
        )
        .unwrap();
        fs::write(&t2, "image,bare soil,harbor&port\nb_1.jpg,0,1\n\n").unwrap();
        let rows = TableRows::read(&[t1.clone(), t2.clone()]).unwrap();
        let l = rows.get("b_1.jpg", Path::new("x")).unwrap();
        assert_eq!(&l.names[..], ["bare soil", "harbor&port"]);
        assert_eq!(l.values, [false, true]);
        let err = rows.get("c_1.jpg", Path::new("img/c_1.jpg")).unwrap_err();
        assert!(
            err.message.contains("c_1.jpg") && err.message.contains("a.csv"),
            "{err}"
        );
        fs::write(&t2, "image,bare soil\nb_1.jpg,0\n").unwrap();
        assert!(TableRows::read(&[t1.clone(), t2.clone()])
            .unwrap_err()
            .message
            .contains("differs"));
        fs::write(&t2, "image,bare soil,harbor&port\na_1.jpg,0,1\n").unwrap();
        assert!(TableRows::read(&[t1.clone(), t2.clone()])
            .unwrap_err()
            .message
            .contains("given twice"));
        fs::write(&t2, "image,bare soil,harbor&port\nb_1.jpg,0,2\n").unwrap();
        assert!(TableRows::read(&[t1, t2])
            .unwrap_err()
            .message
            .contains("must be 0 or 1"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
