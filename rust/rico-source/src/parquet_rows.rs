//! Parquet files of Major-TOM's hub schema: one row per product, with `product_id`,
//! `grid_cell` and one column of file bytes per band. Each row stands for the product folder
//! Major-TOM's `filter_download` unpacks it to: `<grid_cell>/<product_id>/<column>.tif`
//! (`thumbnail.png` for the thumbnail).

use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

use crate::{too_large, Limits, Member, SourceError, SourceErrorKind, Visitor};

const PRODUCT: &str = "product_id";
const CELL: &str = "grid_cell";

/// Reads a Parquet file through `chunks` (`total` bytes); `path` names it in messages.
///
/// Damaged input can make the parquet crate panic (an index out of bounds in its RLE decoder
/// on a flipped bit): such a panic is caught here and becomes a [`SourceErrorKind::Corrupt`]
/// error naming the file, never an abort of the process.
pub(crate) fn read_from<V, R>(
    path: &Path,
    chunks: R,
    prefetch: &dyn crate::Prefetch,
    total: u64,
    limits: &Limits,
    visitor: &mut V,
) -> Result<(), V::Error>
where
    V: Visitor,
    R: parquet::file::reader::ChunkReader + 'static,
{
    crate::quiet_panics::catch(move || -> Result<(), V::Error> {
        let reader = SerializedFileReader::new(chunks).map_err(|e| corrupt(path, &e))?;
        let metadata = reader.metadata();
        let schema = metadata.file_metadata().schema_descr();
        let columns: Vec<String> = schema
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        if !columns.iter().any(|c| c == PRODUCT) || !columns.iter().any(|c| c == CELL) {
            return Err(SourceError::new(
                SourceErrorKind::Layout,
                path,
                format!(
                    "this Parquet file has no {PRODUCT} and {CELL} columns (it has {}); rico reads Parquet files of Major-TOM's hub schema",
                    columns.join(", ")
                ),
            )
            .hint("give the images/part_XXXXX.parquet files of a Major-TOM Core dataset, or the folder that holds them")
            .into());
        }
        visitor.root(&crate::archive_stem(path))?;
        // Only what is needed is fetched: a row group's key columns first, then the band columns
        // the conversion wants from it (none of a product left out by a key list; never the
        // thumbnail).
        let fields = metadata.file_metadata().schema().get_fields().to_vec();
        let projection = |names: &[&str]| -> parquet::errors::Result<parquet::schema::types::Type> {
            let chosen: Vec<_> = fields
                .iter()
                .filter(|f| names.contains(&f.name()))
                .cloned()
                .collect();
            parquet::schema::types::Type::group_type_builder("schema")
                .with_fields(chosen)
                .build()
        };
        let binary: Vec<String> = fields
            .iter()
            .filter(|f| {
                f.is_primitive()
                    && f.get_physical_type() == parquet::basic::Type::BYTE_ARRAY
                    && f.name() != PRODUCT
                    && f.name() != CELL
            })
            .map(|f| f.name().to_string())
            .collect();
        let rel_of = |cell: &str, product: &str, column: &str| {
            let ext = if column == "thumbnail" { "png" } else { "tif" };
            format!("{cell}/{product}/{column}.{ext}")
        };
        // Every column chunk must lie inside the file: a length is a claim, and the chunk is read
        // (and its buffer allocated) by what the footer declares.
        for group in metadata.row_groups() {
            for column in group.columns() {
                let (start, len) = column.byte_range();
                if start.checked_add(len).is_none_or(|end| end > total) {
                    return Err(SourceError::new(
                        SourceErrorKind::Corrupt,
                        path,
                        format!(
                            "cannot read this Parquet file: the footer puts column {} at bytes {start}..+{len}, past the file's end ({total} bytes); it is truncated or damaged",
                            column.column_descr().name()
                        ),
                    )
                    .hint("download it again (compare its checksum with the hub's); records committed so far are kept, finish with --resume")
                    .into());
                }
            }
        }
        let mut done = 0u64;
        for group in 0..reader.num_row_groups() {
            done += metadata.row_group(group).compressed_size().max(0) as u64;
            let row_group = reader.get_row_group(group).map_err(|e| corrupt(path, &e))?;
            // The byte ranges of this row group's chunks of `columns`, fetched at once.
            let ranges = |columns: &[&str]| -> Vec<std::ops::Range<u64>> {
                metadata
                    .row_group(group)
                    .columns()
                    .iter()
                    .filter(|c| columns.contains(&c.column_descr().name()))
                    .map(|c| {
                        let (start, len) = c.byte_range();
                        start..start + len
                    })
                    .collect()
            };
            prefetch.prefetch(ranges(&[PRODUCT, CELL]))?;
            let keys_only = projection(&[PRODUCT, CELL]).map_err(|e| corrupt(path, &e))?;
            let mut products: Vec<(String, String)> = Vec::new();
            for (index, row) in row_group
                .get_row_iter(Some(keys_only))
                .map_err(|e| corrupt(path, &e))?
                .enumerate()
            {
                let row = row.map_err(|e| corrupt(path, &e))?;
                let where_ = format!("row group {group}, row {index}");
                products.push(names_of(&row, path, &where_)?);
            }
            let wanted: Vec<&str> = binary
                .iter()
                .map(String::as_str)
                .filter(|column| {
                    products
                        .iter()
                        .any(|(cell, product)| visitor.wants(&rel_of(cell, product, column)))
                })
                .collect();
            if wanted.is_empty() {
                visitor.progress(done.min(total));
                continue;
            }
            let mut names = vec![PRODUCT, CELL];
            names.extend(wanted.iter().copied());
            prefetch.prefetch(ranges(&names))?;
            let chosen = projection(&names).map_err(|e| corrupt(path, &e))?;
            let rows = row_group
                .get_row_iter(Some(chosen))
                .map_err(|e| corrupt(path, &e))?;
            for (index, row) in rows.enumerate() {
                let row = row.map_err(|e| corrupt(path, &e))?;
                let where_ = format!("row group {group}, row {index}");
                let (cell, product) = names_of(&row, path, &where_)?;
                for (name, field) in row.get_column_iter() {
                    let Field::Bytes(bytes) = field else { continue };
                    if name == PRODUCT || name == CELL {
                        continue;
                    }
                    let rel = rel_of(&cell, &product, name);
                    if !visitor.wants(&rel) {
                        continue;
                    }
                    let data = bytes.data();
                    if data.len() as u64 > limits.max_member_bytes {
                        return Err(too_large(path, &rel, data.len() as u64, limits).into());
                    }
                    visitor.member(Member {
                        rel: &rel,
                        name: &rel,
                        bytes: data.to_vec(),
                    })?;
                }
            }
            visitor.progress(done.min(total));
        }
        visitor.progress(total);
        Ok(())
    })
        .unwrap_or_else(|panic| {
            Err(SourceError::new(
                SourceErrorKind::Corrupt,
                path,
                format!("cannot read this Parquet file: it is damaged (the Parquet decoder stopped: {panic})"),
            )
            .hint("download it again (compare its checksum with the hub's); records committed so far are kept, finish with --resume")
            .into())
        })
}

/// (grid cell, product id) of a row, checked to be plain names.
fn names_of(
    row: &parquet::record::Row,
    path: &Path,
    where_: &str,
) -> Result<(String, String), SourceError> {
    let text = |name: &str| -> Option<String> {
        row.get_column_iter()
            .find(|(n, _)| n.as_str() == name)
            .and_then(|(_, f)| match f {
                Field::Str(s) => Some(s.clone()),
                Field::Bytes(b) => std::str::from_utf8(b.data()).ok().map(str::to_string),
                _ => None,
            })
    };
    let (Some(product), Some(cell)) = (text(PRODUCT), text(CELL)) else {
        return Err(layout(path, where_, "has no product_id or grid_cell value"));
    };
    let plain = |s: &str| {
        !s.is_empty() && !s.contains('/') && crate::normalize_member_name(s).as_deref() == Some(s)
    };
    if !plain(&product) || !plain(&cell) {
        return Err(layout(
            path,
            where_,
            "has a product_id or grid_cell that is not a plain name",
        ));
    }
    Ok((cell, product))
}

fn corrupt(path: &Path, e: &parquet::errors::ParquetError) -> SourceError {
    SourceError::new(
        SourceErrorKind::Corrupt,
        path,
        format!("cannot read this Parquet file: {e}"),
    )
    .hint("download it again (compare its checksum with the hub's); records committed so far are kept, finish with --resume")
}

fn layout(path: &Path, where_: &str, what: &str) -> SourceError {
    SourceError::new(SourceErrorKind::Layout, path, format!("{where_} {what}"))
        .hint("rico reads Parquet files of Major-TOM's hub schema: product_id, grid_cell and one column of GeoTIFF bytes per band")
}
