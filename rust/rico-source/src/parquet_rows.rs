//! Parquet files of Major-TOM's hub schema: one row per product, with `product_id`,
//! `grid_cell` and one column of file bytes per band. Each row stands for the product folder
//! Major-TOM's `filter_download` unpacks it to: `<grid_cell>/<product_id>/<column>.tif`
//! (`thumbnail.png` for the thumbnail).

use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

use crate::{file_len, open, too_large, Limits, Member, SourceError, SourceErrorKind, Visitor};

const PRODUCT: &str = "product_id";
const CELL: &str = "grid_cell";

pub(crate) fn read<V: Visitor>(
    path: &Path,
    limits: &Limits,
    visitor: &mut V,
) -> Result<(), V::Error> {
    let file = open(path)?;
    let total = file_len(&file);
    read_from(path, file, total, limits, visitor)
}

/// Reads a Parquet file through `chunks` (`total` bytes); `path` names it in messages.
pub(crate) fn read_from<V: Visitor, R: parquet::file::reader::ChunkReader + 'static>(
    path: &Path,
    chunks: R,
    total: u64,
    limits: &Limits,
    visitor: &mut V,
) -> Result<(), V::Error> {
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
    let mut done = 0u64;
    for group in 0..reader.num_row_groups() {
        let row_group = reader.get_row_group(group).map_err(|e| corrupt(path, &e))?;
        done += metadata.row_group(group).compressed_size().max(0) as u64;
        let rows = row_group
            .get_row_iter(None)
            .map_err(|e| corrupt(path, &e))?;
        for (index, row) in rows.enumerate() {
            let row = row.map_err(|e| corrupt(path, &e))?;
            let text = |name: &str| -> Option<String> {
                row.get_column_iter()
                    .find(|(n, _)| n.as_str() == name)
                    .and_then(|(_, f)| match f {
                        Field::Str(s) => Some(s.clone()),
                        Field::Bytes(b) => std::str::from_utf8(b.data()).ok().map(str::to_string),
                        _ => None,
                    })
            };
            let where_ = format!("row group {group}, row {index}");
            let (Some(product), Some(cell)) = (text(PRODUCT), text(CELL)) else {
                return Err(layout(path, &where_, "has no product_id or grid_cell value").into());
            };
            let (Some(product), Some(cell)) = (
                crate::normalize_member_name(&product),
                crate::normalize_member_name(&cell),
            ) else {
                return Err(layout(
                    path,
                    &where_,
                    "has a product_id or grid_cell that is not a plain name",
                )
                .into());
            };
            if product.contains('/') || cell.contains('/') || product.is_empty() || cell.is_empty()
            {
                return Err(layout(
                    path,
                    &where_,
                    "has a product_id or grid_cell that is not a plain name",
                )
                .into());
            }
            for (name, field) in row.get_column_iter() {
                let Field::Bytes(bytes) = field else { continue };
                if name == PRODUCT || name == CELL {
                    continue;
                }
                let ext = if name == "thumbnail" { "png" } else { "tif" };
                let rel = format!("{cell}/{product}/{name}.{ext}");
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
