//! The `rico` command line. The binary and the Python console script both call [`run`].

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};
use rico_core::datasets::{presets, Preset};
use rico_core::{convert_dataset, ConvertOptions, Error};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  data error: a source file is unreadable, truncated, corrupt or unsupported, a band is
     missing, or two sources give the same key
  2  usage error: bad options, a source directory that does not exist or holds no patch,
     a target that is not an LMDB directory
  3  output error: the database cannot be written (e.g. the disk is full)";

fn common_args(cmd: Command) -> Command {
    cmd.arg(
        Arg::new("target-dir")
            .long("target-dir")
            .value_name("DIR")
            .required(true)
            .value_parser(value_parser!(PathBuf))
            .help("Directory of the LMDB database to write (created if missing; must be new or empty unless --resume)"),
    )
    .arg(
        Arg::new("threads")
            .long("threads")
            .short('t')
            .visible_alias("num-workers")
            .value_name("N")
            .value_parser(value_parser!(usize))
            .help("Decoder threads (default: one per core); --num-workers is accepted as in rico-hdl"),
    )
    .arg(Arg::new("quiet").long("quiet").short('q').action(ArgAction::SetTrue).help("Print nothing but errors"))
    .arg(
        Arg::new("resume")
            .long("resume")
            .action(ArgAction::SetTrue)
            .help("Finish an interrupted conversion: keep the records in the target, add the missing ones"),
    )
    .arg(
        Arg::new("skip-invalid")
            .long("skip-invalid")
            .action(ArgAction::SetTrue)
            .help("Leave out patches with bad files instead of stopping; they are listed in rico-skipped.tsv in the target"),
    )
}

fn dataset_command(preset: &Preset) -> Command {
    let mut cmd = Command::new(preset.name).about(preset.about).after_help(EXIT_CODES);
    for source in &preset.sources {
        cmd = cmd.arg(
            Arg::new(source.flag)
                .long(source.flag)
                .value_name("DIR")
                .value_parser(value_parser!(PathBuf))
                .help(source.help),
        );
    }
    for param in &preset.params {
        cmd = cmd.arg(
            Arg::new(param.flag)
                .long(param.flag)
                .value_name(param.value_name)
                .required(param.required)
                .help(param.help),
        );
    }
    common_args(cmd)
}

/// The full command tree.
pub fn command() -> Command {
    let mut cmd = Command::new("rico")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Convert remote-sensing datasets into LMDB + safetensors for fast deep-learning reads")
        .long_about(
            "Convert remote-sensing datasets into LMDB + safetensors for fast deep-learning reads.\n\n\
             Each patch becomes one record: key = patch name, value = safetensors of band -> 2-D array, \
             values identical to the source files. Drop-in for rico-hdl: same subcommands and flags.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .after_help(EXIT_CODES);
    for preset in presets() {
        cmd = cmd.subcommand(dataset_command(&preset));
    }
    cmd.subcommand(
        Command::new("info")
            .about("Describe a converted database: records, size, bands with dtypes and shapes")
            .arg(Arg::new("path").value_name("PATH").required(true).value_parser(value_parser!(PathBuf)).help("Database directory"))
            .arg(
                Arg::new("sample")
                    .long("sample")
                    .value_name("N")
                    .default_value("64")
                    .value_parser(value_parser!(usize))
                    .help("Records whose headers are read to list bands and shapes"),
            )
            .after_help(EXIT_CODES),
    )
}

fn run_info(matches: &ArgMatches) -> Result<(), Error> {
    let path = matches.get_one::<PathBuf>("path").cloned().unwrap_or_default();
    let sample = matches.get_one::<usize>("sample").copied().unwrap_or(64);
    let db = rico_core::reader::Database::open(&path)?;
    let summary = rico_core::reader::summarize(&db, sample)?;
    print!("{}", summary.text(&path));
    Ok(())
}

fn run_dataset(name: &str, matches: &ArgMatches) -> Result<(), Error> {
    let preset = rico_core::datasets::preset(name)?;
    let mut sources = Vec::new();
    for source in &preset.sources {
        if let Some(dir) = matches.get_one::<PathBuf>(source.flag) {
            sources.push((source.flag.to_string(), dir.clone()));
        }
    }
    let mut params = Vec::new();
    for param in &preset.params {
        if let Some(value) = matches.get_one::<String>(param.flag) {
            params.push((param.flag.to_string(), value.clone()));
        }
    }
    let quiet = matches.get_flag("quiet");
    let options = ConvertOptions {
        params,
        threads: matches.get_one::<usize>("threads").copied(),
        resume: matches.get_flag("resume"),
        skip_invalid: matches.get_flag("skip-invalid"),
        progress: if quiet { Some(false) } else { None },
    };
    let target = matches.get_one::<PathBuf>("target-dir").cloned().unwrap_or_default();
    let summary = convert_dataset(name, &sources, &target, &options)?;
    if !quiet {
        eprintln!("{}", summary.line());
    }
    Ok(())
}

/// Runs `rico` with `args` (the program name first); returns the exit code.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = match command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 2,
            };
        }
    };
    let Some((name, sub)) = matches.subcommand() else { return 2 };
    let result = if name == "info" { run_info(sub) } else { run_dataset(name, sub) };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.kind.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_is_well_formed() {
        super::command().debug_assert();
    }
}
