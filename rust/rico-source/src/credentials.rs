//! AWS credentials the usual way: the `AWS_*` environment variables first, then the shared
//! credentials and config files (`AWS_PROFILE`, default `default`). `object_store` reads the
//! environment but not the files; the files are two small INI documents, read here (a few
//! lines, no INI crate for two keys of one section).

use std::path::PathBuf;

fn home_file(env: &str, default: &str) -> Option<PathBuf> {
    std::env::var_os(env)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(default)))
}

/// The `key = value` pairs of section `[name]` of the INI file at `path`.
fn section(path: Option<PathBuf>, names: &[String]) -> Vec<(String, String)> {
    let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) else {
        return Vec::new();
    };
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = names.iter().any(|n| n == header.trim());
            continue;
        }
        if let (true, Some((k, v))) = (inside, line.split_once('=')) {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out
}

fn profile() -> String {
    std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_string())
}

/// (access key id, secret access key, session token): from the environment, else from the
/// shared credentials file's profile.
pub(crate) fn aws_credentials() -> (Option<String>, Option<String>, Option<String>) {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(key), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return (Some(key), Some(secret), env("AWS_SESSION_TOKEN"));
    }
    let pairs = section(
        home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
        &[profile()],
    );
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    (
        get("aws_access_key_id"),
        get("aws_secret_access_key"),
        get("aws_session_token"),
    )
}

/// The region of the config file's profile (`[default]` or `[profile NAME]`).
pub(crate) fn aws_profile_region() -> Option<String> {
    let name = profile();
    let pairs = section(
        home_file("AWS_CONFIG_FILE", ".aws/config"),
        &[name.clone(), format!("profile {name}")],
    );
    pairs
        .into_iter()
        .find(|(k, _)| k == "region")
        .map(|(_, v)| v)
}
