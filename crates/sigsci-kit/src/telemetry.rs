//! Logging set-up for the CLI: human-readable by default, JSON on request.

use tracing_subscriber::EnvFilter;

/// `RUST_LOG` wins; otherwise warnings only, so command output stays clean.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
