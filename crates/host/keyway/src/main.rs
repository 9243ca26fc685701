//! `keyway`: the vendor command-line tool.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = keyway_cli::cli::Cli::parse();
    match keyway_cli::cli::run(cli, &mut std::io::stdout(), &mut std::io::stderr()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
