//! The standalone `rico` binary.

fn main() {
    std::process::exit(rico_cli::run(std::env::args_os()));
}
