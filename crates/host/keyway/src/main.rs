//! `keyway`: the vendor command-line tool.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    init_tracing();
    let cli = keyway::cli::Cli::parse();
    match keyway::cli::run(cli, &mut std::io::stdout(), &mut std::io::stderr()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Log lines (`tracing`, e.g. the hub's MQTT bridge refusing a command) go to
/// stderr. The filter is `KEYWAY_LOG`, else `RUST_LOG`, else info for the
/// keyway crates and warnings for everything else. Set once (`try_init`).
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("KEYWAY_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| {
            EnvFilter::new("warn,keyway=info,keyway=info,keyway_hub=info,keyway_tuf=info")
        });
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .try_init();
}
