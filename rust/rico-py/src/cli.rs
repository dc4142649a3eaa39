//! The command line: `main` (the `rico` program) and `parse_convert`.

use std::collections::BTreeMap;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use rico_core::OptionValue;

/// Parses a conversion command line into its dataset, target, sources, params and `options`
/// (the conversion options given, as `rico.convert`'s keywords); None for other subcommands; raises SystemExit(code) for
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
    let options = PyDict::new(py);
    for (name, value) in call.options.values() {
        let value = match value {
            OptionValue::Unset => py.None().into_bound(py),
            OptionValue::Bool(b) => pyo3::types::PyBool::new(py, b).to_owned().into_any(),
            OptionValue::Int(n) => n.into_pyobject(py)?.into_any(),
            OptionValue::Float(x) => x.into_pyobject(py)?.into_any(),
            OptionValue::Strings(s) => s.into_pyobject(py)?.into_any(),
        };
        options.set_item(name, value)?;
    }
    out.set_item("options", options)?;
    out.set_item("quiet", call.quiet)?;
    out.set_item("scheduler", call.scheduler)?;
    Ok(Some(out))
}

/// Runs the `rico` command line with `argv` (program name first); returns the exit code.
#[pyfunction]
pub(crate) fn main(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.allow_threads(|| rico_cli::run(argv))
}
