//! Logging: `tracing` to stderr, text or JSON lines, filtered by `RUST_LOG` (default `info`, `warn` for commands that print results).

use tracing_subscriber::EnvFilter;

pub fn init(json: bool, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},sqlx=warn,tower_http=warn,hyper=warn")));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
