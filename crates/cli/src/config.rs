//! `sluice.toml`: every key is the lower-case name of a `SLUICE_*` variable without the prefix
//! (`database_url = "postgres://…"` is `SLUICE_DATABASE_URL`). The file fills in variables that are not set,
//! so flags win over the environment, and the environment over the file.

use std::path::PathBuf;

use anyhow::{Context, bail};

pub fn load_config_file() -> anyhow::Result<()> {
    let (path, explicit) = match std::env::var_os("SLUICE_CONFIG") {
        Some(path) => (PathBuf::from(path), true),
        None => (PathBuf::from("sluice.toml"), false),
    };
    if !path.exists() {
        if explicit {
            bail!("SLUICE_CONFIG names {}, which does not exist", path.display());
        }
        return Ok(());
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let table: toml::Table = text.parse().with_context(|| format!("{} is not valid TOML", path.display()))?;
    for (key, value) in table {
        let var = format!("SLUICE_{}", key.to_uppercase());
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))
                .collect::<Vec<_>>()
                .join(","),
            other => bail!("{}: key {key:?} has an unsupported value {other}", path.display()),
        };
        if std::env::var_os(&var).is_none() {
            set_env(&var, &text);
        }
    }
    Ok(())
}

#[allow(unsafe_code)]
fn set_env(key: &str, value: &str) {
    // SAFETY: called from `main` before the async runtime or any other thread is started.
    unsafe { std::env::set_var(key, value) }
}
