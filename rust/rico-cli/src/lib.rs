//! The `rico` command line. The binary and the Python console script both call [`run`].
#![warn(clippy::undocumented_unsafe_blocks)]

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};
use rico_core::write::datasets::{presets, Preset};
use rico_core::{convert_dataset, Error, UserOptions};

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
    .arg(
        Arg::new("io-depth")
            .long("io-depth")
            .value_name("N")
            .value_parser(value_parser!(usize))
            .help("Source files read at once, apart from the decoder threads (default: 32, which keeps a cold local disk or an NFS mount busy). Raise it (64-256) on network or parallel filesystems with high latency (NFS over WAN, Lustre, GPFS, object-store mounts); lower it to be gentle on a shared spinning disk"),
    )
    .arg(
        Arg::new("buffer-mb")
            .long("buffer-mb")
            .value_name("MB")
            .value_parser(value_parser!(u64).range(4..=65536))
            .help("Megabytes of source files and records held at once: the chunks in flight between reading, decoding and writing, and the open transaction (default: 64, about 110 MB peak RSS on BigEarthNet at any size). Lower it on a crowded node; raise it for fewer, larger commits on a fast disk"),
    )
    .arg(
        Arg::new("max-held-mb")
            .long("max-held-mb")
            .value_name("MB")
            .value_parser(value_parser!(u64).range(1..))
            .help("With archives and Parquet files: the most megabytes of incomplete patches held while a container is read, and the largest member read (default: 1024). Archives written in name order hold one patch at a time; raise it for an archive whose members come shuffled"),
    )
    .arg(
        Arg::new("keys")
            .long("keys")
            .value_name("FILE")
            .value_parser(value_parser!(PathBuf))
            .help("Convert only the patches whose keys this text file lists, one per line: files of other patches are not read (archive members skipped, Parquet row groups not fetched)"),
    )
    .arg(
        Arg::new("fetch-parts")
            .long("fetch-parts")
            .value_name("N")
            .value_parser(value_parser!(u64).range(1..))
            .help("With URLs (https://, s3://): ranged requests in flight for one object (default: 4). Raise it on long links to object storage"),
    )
    .arg(
        Arg::new("fetch-part-mb")
            .long("fetch-part-mb")
            .value_name("MB")
            .value_parser(value_parser!(u64).range(1..))
            .help("With URLs: megabytes asked for by one ranged request (default: 4); parts in flight times this is about the memory fetching holds per object"),
    )
    .arg(
        Arg::new("read-timeout")
            .long("read-timeout")
            .value_name("SECONDS")
            .value_parser(parse_read_timeout)
            .help("With URLs: a request that receives no byte for this long is abandoned and retried (default: 30); a range that gets nothing for three times this stops the run with an error"),
    )
    .arg(
        Arg::new("insecure-tls")
            .long("insecure-tls")
            .action(ArgAction::SetTrue)
            .help("With https:// URLs: accept certificates that do not verify (a self-signed lab server). Verification is on without it"),
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
    .arg(
        Arg::new("shards")
            .long("shards")
            .value_name("N")
            .value_parser(value_parser!(usize))
            .help("Cut the sorted patch list into N contiguous shards: one LMDB directory shard-NNNNN/ each under the target, plus rico-manifest.json; rico.open reads them as one database"),
    )
    .arg(
        Arg::new("scheduler")
            .long("scheduler")
            .value_name("ADDRESS")
            .requires("shards")
            .help("Run the shards as tasks on this Dask scheduler (e.g. tcp://10.0.0.1:8786); needs the Python package: `python -m rico ...`"),
    )
}

/// The source and target options of a verify run: those of the conversion, without the
/// options that only writing has.
fn verify_command(preset: &Preset) -> Command {
    let mut cmd = dataset_command(preset);
    for name in [
        "quiet",
        "resume",
        "skip-invalid",
        "shards",
        "scheduler",
        "io-depth",
        "buffer-mb",
    ] {
        cmd = cmd.mut_arg(name, |a| a.hide(true));
    }
    cmd.mut_arg("target-dir", |a| {
        a.help("The database to verify (plain or sharded)")
    })
    .about(format!(
        "Verify a {} conversion against its sources",
        preset.name
    ))
}

fn dataset_command(preset: &Preset) -> Command {
    let mut cmd = Command::new(preset.name)
        .about(preset.about)
        .after_help(EXIT_CODES);
    for source in &preset.sources {
        cmd = cmd.arg(
            Arg::new(source.flag)
                .long(source.flag)
                .value_name("PATH")
                .value_parser(value_parser!(PathBuf))
                .action(ArgAction::Append)
                .help(format!("{} (or the archive or Parquet file it ships as; repeat the option, or give a quoted glob, for several parts)", source.help)),
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
    .subcommand(bench_command())
    .subcommand(stats_command())
    .subcommand({
        let mut verify = Command::new("verify")
            .about("Re-decode the sources and compare with a database record by record: missing, extra, differing")
            .long_about(
                "Re-decode the sources and compare with a database record by record.\n\n                 Give the dataset and the same options as the conversion, e.g.\n                   rico verify bigearthnet --target-dir BigEarthNet.lmdb --bigearthnet-s2-dir BigEarthNet-S2\n\n                 Exit code 0 only when every record matches; 1 when a record is missing, extra or differs.",
            )
            .subcommand_required(true)
            .after_help(EXIT_CODES);
        for preset in presets() {
            verify = verify.subcommand(verify_command(&preset));
        }
        verify
    })
}

/// The keys of a key list file: one per line, blank lines and `#` comments left out.
fn read_key_list(path: &std::path::Path) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::usage(format!("cannot read the key list given with --keys: {e}")).at(path)
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// `--read-timeout`: seconds, checked as `read_timeout=` is.
fn parse_read_timeout(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("not a number of seconds: {text}"))?;
    rico_core::write::options::read_timeout(seconds).map_err(|e| e.to_string())?;
    Ok(seconds)
}

/// The conversion options of the flags, in the user's units.
fn user_options(preset: &Preset, matches: &ArgMatches) -> Result<UserOptions, Error> {
    let mut params = Vec::new();
    for param in &preset.params {
        if let Some(value) = matches.get_one::<String>(param.flag) {
            params.push((param.flag.to_string(), value.clone()));
        }
    }
    Ok(UserOptions {
        params,
        threads: matches.get_one::<usize>("threads").copied(),
        io_depth: matches.get_one::<usize>("io-depth").copied(),
        buffer_mb: matches.get_one::<u64>("buffer-mb").map(|mb| *mb as usize),
        max_held_mb: matches.get_one::<u64>("max-held-mb").copied(),
        fetch_parts: matches.get_one::<u64>("fetch-parts").map(|n| *n as usize),
        fetch_part_mb: matches.get_one::<u64>("fetch-part-mb").copied(),
        read_timeout: matches.get_one::<f64>("read-timeout").copied(),
        insecure_tls: matches.get_flag("insecure-tls"),
        keys: match matches.get_one::<PathBuf>("keys") {
            None => None,
            Some(path) => Some(read_key_list(path)?),
        },
        progress: matches.get_flag("quiet").then_some(false),
        resume: matches.get_flag("resume"),
        skip_invalid: matches.get_flag("skip-invalid"),
        shards: matches.get_one::<usize>("shards").copied(),
        shard_index: None,
    })
}

/// A conversion's arguments, as parsed from a command line.
#[derive(Debug, Clone)]
pub struct ConvertCall {
    pub dataset: String,
    pub sources: Vec<(String, PathBuf)>,
    pub target: PathBuf,
    pub options: UserOptions,
    pub quiet: bool,
    pub scheduler: Option<String>,
}

fn convert_call(name: &str, matches: &ArgMatches) -> Result<ConvertCall, Error> {
    let preset = rico_core::write::datasets::preset(name)?;
    let mut sources = Vec::new();
    for source in &preset.sources {
        for path in matches
            .get_many::<PathBuf>(source.flag)
            .into_iter()
            .flatten()
        {
            sources.push((source.flag.to_string(), path.clone()));
        }
    }
    Ok(ConvertCall {
        dataset: name.to_string(),
        sources,
        target: matches
            .get_one::<PathBuf>("target-dir")
            .cloned()
            .unwrap_or_default(),
        options: user_options(&preset, matches)?,
        quiet: matches.get_flag("quiet"),
        scheduler: matches.get_one::<String>("scheduler").cloned(),
    })
}

/// Parses a conversion command line (program name first) without running it: `Ok(None)` for
/// other subcommands; `Err(code)` after printing clap's message (help, usage error).
pub fn parse_convert<I, T>(args: I) -> Result<Option<ConvertCall>, i32>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = command().try_get_matches_from(args).map_err(|e| {
        let _ = e.print();
        match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
            _ => 2,
        }
    })?;
    match matches.subcommand() {
        Some((name, sub)) if !matches!(name, "info" | "bench" | "verify" | "stats") => {
            convert_call(name, sub).map(Some).map_err(|e| {
                eprintln!("error: {e}");
                e.kind.exit_code()
            })
        }
        _ => Ok(None),
    }
}

fn run_verify(matches: &ArgMatches) -> Result<bool, Error> {
    let Some((name, sub)) = matches.subcommand() else {
        return Err(Error::usage("give the dataset to verify"));
    };
    let call = convert_call(name, sub)?;
    let options = call.options.build()?;
    let report = rico_core::verify_dataset(name, &call.sources, &call.target, &options)?;
    print!("{}", report.text());
    Ok(report.ok())
}

/// `--bands` of the commands that read a database: names, spaced or comma-separated.
fn bands_arg(help: &'static str) -> Arg {
    Arg::new("bands")
        .long("bands")
        .value_name("BAND")
        .num_args(1..)
        .value_delimiter(',')
        .help(help)
}

/// `--threads` of the commands that read a database.
fn reader_threads() -> Arg {
    Arg::new("threads")
        .long("threads")
        .short('t')
        .value_name("N")
        .value_parser(value_parser!(usize))
        .help("Reader threads (default: one per core)")
}

/// `rico bench`: records/s and MB/s a database delivers on this machine and storage.
fn bench_command() -> Command {
    Command::new("bench")
        .about("Measure what this machine and storage deliver from a converted database: records/s and MB/s for sequential and random record reads and for batches")
        .arg(Arg::new("path").value_name("PATH").required(true).value_parser(value_parser!(PathBuf)).help("Database directory"))
        .arg(bands_arg("Bands of the batches, e.g. --bands B04 B03 B02 (default: the bands of the first record)"))
        .arg(
            Arg::new("size")
                .long("size")
                .value_name("S")
                .value_parser(value_parser!(usize))
                .help("Resample the batches' bands to SxS (default: their own shape, or the largest side when they differ)"),
        )
        .arg(
            Arg::new("batch")
                .long("batch")
                .value_name("N")
                .default_value("32")
                .value_parser(value_parser!(usize))
                .help("Records per batch"),
        )
        .arg(reader_threads())
        .arg(
            Arg::new("seconds")
                .long("seconds")
                .value_name("X")
                .default_value("2")
                .value_parser(value_parser!(f64))
                .help("Seconds each of the three measurements runs"),
        )
        .arg(Arg::new("json").long("json").action(ArgAction::SetTrue).help("Print the report as one JSON object"))
        .after_help(EXIT_CODES)
}

fn run_bench(matches: &ArgMatches) -> Result<(), Error> {
    let path = matches
        .get_one::<PathBuf>("path")
        .cloned()
        .unwrap_or_default();
    let options = rico_core::read::bench::BenchOptions {
        bands: matches
            .get_many::<String>("bands")
            .map(|b| b.cloned().collect()),
        size: matches.get_one::<usize>("size").copied(),
        batch: matches.get_one::<usize>("batch").copied().unwrap_or(32),
        threads: matches.get_one::<usize>("threads").copied(),
        seconds: matches.get_one::<f64>("seconds").copied().unwrap_or(2.0),
    };
    let db = rico_core::read::reader::Database::open(&path)?;
    let report = rico_core::read::bench::run(&std::sync::Arc::new(db), &options)?;
    if matches.get_flag("json") {
        println!("{}", report.json(&path));
    } else {
        print!("{}", report.text(&path));
    }
    Ok(())
}

/// `rico stats`: exact per-band mean and std over a set of records, written as JSON.
fn stats_command() -> Command {
    Command::new("stats")
        .about("Exact per-band mean and standard deviation over a split (or every record), written as JSON beside the database for normalize=")
        .long_about(
            "Exact per-band mean and standard deviation (float64, population) over a set of records, \
             written as JSON beside the database (<DB>.stats.json) for rico.BigEarthNet(normalize=...).\n\n\
             With --metadata (BigEarthNet's metadata.parquet), the records are those of --split: \
             S2 bands from patch_id, S1 bands (VV, VH) from s1_name; reading Parquet needs the Python \
             package (`pip install rico-eo[bigearthnet]`, then the `rico` console script or `python -m rico`). \
             Without it, --keys FILE (one key per line) or every record; each band is taken from the \
             records that hold it.",
        )
        .arg(Arg::new("path").value_name("DB").required(true).value_parser(value_parser!(PathBuf)).help("Database directory"))
        .arg(bands_arg("Bands, e.g. --bands B02 B03 B04 VV VH").required(true))
        .arg(Arg::new("metadata").long("metadata").value_name("PARQUET").value_parser(value_parser!(PathBuf)).help("BigEarthNet's metadata.parquet: take the records of --split (needs the Python package)"))
        .arg(Arg::new("split").long("split").value_name("NAME").help("The split (train, validation or val, test); recorded in the JSON"))
        .arg(Arg::new("include-snow-cloud").long("include-snow-cloud").action(ArgAction::SetTrue).help("With --metadata: keep patches marked as seasonal snow or cloud/shadow (left out by default, as recommended)"))
        .arg(Arg::new("keys").long("keys").value_name("FILE").value_parser(value_parser!(PathBuf)).conflicts_with("metadata").help("Text file of record keys, one per line (default: every record)"))
        .arg(Arg::new("size").long("size").value_name("S").value_parser(value_parser!(usize)).help("Resample every band to SxS first, as batches do (default: the stored values; nearest upsampling by whole factors gives the same figures)"))
        .arg(Arg::new("resample").long("resample").value_name("MODE").default_value("nearest").help("nearest or bilinear (with --size)"))
        .arg(Arg::new("out").long("out").short('o').value_name("FILE").value_parser(value_parser!(PathBuf)).help("Where to write the JSON (default: <DB>.stats.json beside the database)"))
        .arg(reader_threads())
        .after_help(EXIT_CODES)
}

fn run_stats(matches: &ArgMatches) -> Result<(), Error> {
    if matches.get_one::<PathBuf>("metadata").is_some() {
        return Err(Error::usage("--metadata reads a Parquet table, which the binary cannot")
            .hint("install the Python package (`pip install rico-eo[bigearthnet]`) and run `python -m rico stats ...` with the same options"));
    }
    let path = matches
        .get_one::<PathBuf>("path")
        .cloned()
        .unwrap_or_default();
    let keys = match matches.get_one::<PathBuf>("keys") {
        None => None,
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Error::usage(format!("cannot read the key list: {e}")).at(file))?;
            Some(
                text.lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| l.as_bytes().to_vec())
                    .collect::<Vec<_>>(),
            )
        }
    };
    let options = rico_core::read::stats::StatsOptions {
        bands: matches
            .get_many::<String>("bands")
            .map(|b| b.cloned().collect())
            .unwrap_or_default(),
        size: matches.get_one::<usize>("size").copied(),
        resample: rico_core::read::batch::Resample::parse(
            matches
                .get_one::<String>("resample")
                .map_or("nearest", |s| s.as_str()),
        )?,
        threads: matches.get_one::<usize>("threads").copied(),
    };
    let db = rico_core::read::reader::Database::open(&path)?;
    let stats = rico_core::read::stats::compute(&db, keys.as_deref(), &options)?;
    let split = matches.get_one::<String>("split").map(|s| s.as_str());
    let doc = rico_core::read::stats::to_json(&path, &stats, &options, split);
    let out = matches
        .get_one::<PathBuf>("out")
        .cloned()
        .unwrap_or_else(|| rico_core::read::stats::default_path(&path));
    rico_core::read::stats::write_json(&out, &doc)?;
    println!(
        "{:<6} {:>14} {:>14} {:>14}",
        "band", "mean", "std", "pixels"
    );
    for s in &stats {
        println!(
            "{:<6} {:>14.6} {:>14.6} {:>14}",
            s.band, s.mean, s.std, s.count
        );
    }
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn run_info(matches: &ArgMatches) -> Result<(), Error> {
    let path = matches
        .get_one::<PathBuf>("path")
        .cloned()
        .unwrap_or_default();
    let sample = matches.get_one::<usize>("sample").copied().unwrap_or(64);
    let db = rico_core::read::reader::Database::open(&path)?;
    let summary = rico_core::read::info::summarize(&db, sample)?;
    print!("{}", summary.text(&path));
    Ok(())
}

fn run_dataset(name: &str, matches: &ArgMatches) -> Result<(), Error> {
    let call = convert_call(name, matches)?;
    if call.scheduler.is_some() {
        return Err(Error::usage("--scheduler runs the shards on a Dask cluster, which needs Python")
            .hint("install the rico Python package with dask.distributed and run `python -m rico ...` with the same options"));
    }
    let summary = convert_dataset(name, &call.sources, &call.target, &call.options.build()?)?;
    if !call.quiet {
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
    let Some((name, sub)) = matches.subcommand() else {
        return 2;
    };
    let result = match name {
        "info" => run_info(sub),
        "bench" => run_bench(sub),
        "stats" => run_stats(sub),
        "verify" => match run_verify(sub) {
            Ok(true) => Ok(()),
            Ok(false) => return 1,
            Err(e) => Err(e),
        },
        _ => run_dataset(name, sub),
    };
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
