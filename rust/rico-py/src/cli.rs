//! The command line: `main` (the `rico` program) and `parse_convert`.

use std::collections::BTreeMap;

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Parses a conversion command line; None for other subcommands; raises SystemExit(code) for
/// help and usage errors (clap has printed its message).
#[pyfunction]
pub(crate) fn parse_convert<'py>(
    py: Python<'py>,
    argv: Vec<String>,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let call = match rico_cli::parse_convert(argv) {
        Ok(None) => return Ok(None),
        Ok(Some(call)) => call,
        Err(code) => return Err(pyo3::exceptions::PySystemExit::new_err(code)),
    };
    let out = PyDict::new(py);
    out.set_item("dataset", &call.dataset)?;
    out.set_item("target_dir", &call.target)?;
    out.set_item(
        "sources",
        call.sources
            .iter()
            .map(|(k, v)| (k.replace('-', "_"), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    )?;
    out.set_item(
        "params",
        call.options
            .params
            .iter()
            .map(|(k, v)| (k.replace('-', "_"), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    )?;
    out.set_item("threads", call.options.threads)?;
    out.set_item("io_depth", call.options.io_depth)?;
    out.set_item("resume", call.options.resume)?;
    out.set_item("skip_invalid", call.options.skip_invalid)?;
    out.set_item("shards", call.options.shards)?;
    out.set_item("quiet", call.quiet)?;
    out.set_item("scheduler", call.scheduler)?;
    Ok(Some(out))
}

/// Runs the `rico` command line with `argv` (program name first); returns the exit code.
#[pyfunction]
pub(crate) fn main(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.allow_threads(|| rico_cli::run(argv))
}
