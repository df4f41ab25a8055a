//! Where a `config.json` is: a file, a folder, or a model id in the local HuggingFace
//! cache (the layout `huggingface_hub` writes:
//! `<cache>/models--<org>--<name>/refs/<revision>` holding a commit hash, and
//! `<cache>/models--<org>--<name>/snapshots/<commit>/config.json`). With the `hf-hub`
//! feature a model missing from the cache is fetched from the Hub and saved there.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The HuggingFace cache folder: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = var("HF_HUB_CACHE") {
        return Some(p);
    }
    if let Some(p) = var("HF_HOME") {
        return Some(p.join("hub"));
    }
    var("HOME").or_else(|| var("USERPROFILE")).map(|h| h.join(".cache").join("huggingface").join("hub"))
}

/// The path of the `config.json` that `spec` names: a file, a folder holding one, or a
/// model id (`org/name`, `name`, optionally `@revision`) found in the HuggingFace cache of
/// the environment (`cache_dir`), or — with the `hf-hub` feature and unless
/// `HF_HUB_OFFLINE` is set — downloaded from `$HF_ENDPOINT` into it.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    if let Some(p) = local(spec)? {
        return Ok(p);
    }
    Hub::from_env().resolve(spec)
}

/// A file, or a folder's `config.json`; `None` if `spec` is no path that exists.
fn local(spec: &str) -> Result<Option<PathBuf>> {
    let p = Path::new(spec);
    if p.is_file() {
        return Ok(Some(p.to_path_buf()));
    }
    if p.is_dir() {
        let f = p.join("config.json");
        if f.is_file() {
            return Ok(Some(f));
        }
        return Err(Error::File { path: spec.into(), msg: "folder has no config.json".into() });
    }
    Ok(None)
}

/// Where model ids are looked up (and, with `hf-hub`, fetched from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hub {
    /// The cache folder (`cache_dir`); `None` when no home folder is known.
    pub cache: Option<PathBuf>,
    /// `$HF_ENDPOINT`, default `https://huggingface.co`.
    pub endpoint: String,
    /// `$HF_TOKEN`, sent as a bearer token (gated and private models).
    pub token: Option<String>,
    /// `$HF_HUB_OFFLINE` set to 1/true/yes/on: never download.
    pub offline: bool,
}

impl Hub {
    /// The settings of the environment.
    pub fn from_env() -> Hub {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Hub {
            cache: cache_dir(),
            endpoint: var("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".into()),
            token: var("HF_TOKEN"),
            offline: var("HF_HUB_OFFLINE").is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")),
        }
    }

    /// A hub over `cache` with the default endpoint, no token, downloads allowed.
    pub fn new(cache: impl Into<PathBuf>) -> Hub {
        Hub { cache: Some(cache.into()), endpoint: "https://huggingface.co".into(), token: None, offline: false }
    }

    /// `resolve` with these settings instead of the environment's.
    pub fn resolve(&self, spec: &str) -> Result<PathBuf> {
        if let Some(p) = local(spec)? {
            return Ok(p);
        }
        let Some((id, rev)) = parse_id(spec) else {
            return Err(Error::File { path: spec.into(), msg: "no such file or folder, and not a HuggingFace model id (org/name)".into() });
        };
        let Some(cache) = &self.cache else {
            return Err(Error::File { path: spec.into(), msg: "not a file or folder, and no HuggingFace cache folder is known (set HF_HUB_CACHE or HF_HOME)".into() });
        };
        if let Some(p) = cached(cache, id, rev)? {
            return Ok(p);
        }
        self.fetch(spec, cache, id, rev)
    }

    #[cfg(feature = "hf-hub")]
    fn fetch(&self, spec: &str, cache: &Path, id: &str, rev: &str) -> Result<PathBuf> {
        if self.offline {
            return Err(not_cached(spec, cache, id, "HF_HUB_OFFLINE is set"));
        }
        self.download(id, rev)
    }

    #[cfg(not(feature = "hf-hub"))]
    fn fetch(&self, spec: &str, cache: &Path, id: &str, _rev: &str) -> Result<PathBuf> {
        Err(not_cached(spec, cache, id, "this build has no downloads (cargo feature hf-hub)"))
    }

    /// Fetches `{endpoint}/{id}/resolve/{rev}/config.json` and saves it in the cache
    /// (`snapshots/<commit>/config.json`, `refs/<rev>` naming the commit the Hub reports in
    /// `X-Repo-Commit`, or `rev` itself where it does not); returns the saved file.
    #[cfg(feature = "hf-hub")]
    pub fn download(&self, id: &str, rev: &str) -> Result<PathBuf> {
        let cache = self.cache.as_deref().ok_or_else(|| Error::Usage("no HuggingFace cache folder is known (set HF_HUB_CACHE or HF_HOME)".into()))?;
        let url = format!("{}/{id}/resolve/{rev}/config.json", self.endpoint.trim_end_matches('/'));
        let fail = |msg: String| Error::File { path: url.clone(), msg };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(60)))
            .http_status_as_error(false)
            .user_agent(concat!("phantom-gpu/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let mut req = agent.get(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let mut resp = req.call().map_err(|e| fail(format!("download failed: {e}")))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let why = match status {
                401 | 403 => "access denied: the model is gated or private (set HF_TOKEN)".to_string(),
                404 => format!("no model '{id}' (or no config.json at revision '{rev}')"),
                s => format!("HTTP status {s}"),
            };
            return Err(fail(why));
        }
        let commit = resp
            .headers()
            .get("x-repo-commit")
            .and_then(|v| v.to_str().ok())
            .filter(|c| valid_name(c))
            .unwrap_or(rev)
            .to_string();
        let body = resp.body_mut().with_config().limit(16 << 20).read_to_string().map_err(|e| fail(format!("download failed: {e}")))?;
        // Only a parseable config goes into the cache.
        serde_json::from_str::<serde_json::Value>(&body).map_err(|e| fail(format!("the server sent no JSON: {e}")))?;
        let repo = cache.join(repo_folder(id));
        let snap = repo.join("snapshots").join(&commit);
        let io = |p: &Path, e: std::io::Error| Error::Io { path: p.to_path_buf(), source: e };
        std::fs::create_dir_all(&snap).map_err(|e| io(&snap, e))?;
        let file = snap.join("config.json");
        write_atomic(&file, body.as_bytes()).map_err(|e| io(&file, e))?;
        if commit != rev {
            let refs = repo.join("refs");
            std::fs::create_dir_all(&refs).map_err(|e| io(&refs, e))?;
            let r = refs.join(rev);
            write_atomic(&r, commit.as_bytes()).map_err(|e| io(&r, e))?;
        }
        Ok(file)
    }
}

#[cfg(feature = "hf-hub")]
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn not_cached(spec: &str, cache: &Path, id: &str, why: &str) -> Error {
    Error::File {
        path: spec.into(),
        msg: format!(
            "not a file or folder, and not in the HuggingFace cache {} ({}; fetch it with `huggingface-cli download {id} config.json`)",
            cache.join(repo_folder(id)).display(),
            why
        ),
    }
}

/// `models--org--name`.
fn repo_folder(id: &str) -> String {
    format!("models--{}", id.replace('/', "--"))
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `org/name[@rev]` or `name[@rev]` → (id, rev); `None` if it cannot be a model id.
fn parse_id(spec: &str) -> Option<(&str, &str)> {
    let (id, rev) = spec.split_once('@').unwrap_or((spec, "main"));
    let mut parts = id.split('/');
    let ok = match (parts.next(), parts.next(), parts.next()) {
        (Some(a), None, None) => valid_name(a),
        (Some(a), Some(b), None) => valid_name(a) && valid_name(b),
        _ => false,
    };
    (ok && valid_name(rev) && !id.contains("--")).then_some((id, rev))
}

/// The cached `config.json` of `id` at `rev` (a branch or tag in `refs/`, or a commit in
/// `snapshots/`); `None` if it is not there.
fn cached(cache: &Path, id: &str, rev: &str) -> Result<Option<PathBuf>> {
    let repo = cache.join(repo_folder(id));
    if !repo.is_dir() {
        return Ok(None);
    }
    let refs = repo.join("refs").join(rev);
    let commit = match std::fs::read_to_string(&refs) {
        Ok(c) => c.trim().to_string(),
        Err(_) => rev.to_string(),
    };
    if !valid_name(&commit) {
        return Err(Error::File { path: refs.display().to_string(), msg: format!("'{commit}' is not a commit hash") });
    }
    let file = repo.join("snapshots").join(&commit).join("config.json");
    Ok(file.is_file().then_some(file))
}

#[cfg(test)]
mod tests {
    use super::parse_id;

    #[test]
    fn model_ids() {
        assert_eq!(parse_id("meta-llama/Llama-2-7b-hf"), Some(("meta-llama/Llama-2-7b-hf", "main")));
        assert_eq!(parse_id("gpt2"), Some(("gpt2", "main")));
        assert_eq!(parse_id("org/name@v1.0"), Some(("org/name", "v1.0")));
        assert_eq!(parse_id("a/b/c"), None);
        assert_eq!(parse_id("../x"), None);
        assert_eq!(parse_id("org/name@../../x"), None);
        assert_eq!(parse_id(""), None);
    }
}
