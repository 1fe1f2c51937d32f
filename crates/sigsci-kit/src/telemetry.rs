//! Logging set-up for the CLI: human-readable by default, JSON on request.

use tracing_subscriber::EnvFilter;

/// `RUST_LOG` wins; otherwise warnings only, so command output stays clean. `ansi`: stderr takes
/// colour (a terminal, no NO_COLOR); logs written to a file or pipe carry no escape codes.
pub fn init(json: bool, ansi: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
