//! The configuration file: profiles for the client, `[serve]`, agents and workflows for the
//! engine, and the precedence rules (flags, then environment, then profile, then defaults).
//!
//! Loading is two passes on purpose: serde (with `deny_unknown_fields`, so a typo is an error
//! that names line and column) and then `check`, which checks what the TOML grammar cannot:
//! durations, schemas, workflow steps naming real agents. Its errors name line and column too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use serde::Deserialize;
use serde_json::Value;

use crate::error::Failure;

mod check;

/// Names of the agents the engine carries itself.
pub const BUILTIN_AGENTS: [&str; 2] = ["echo", "sleep"];
pub const DEFAULT_LOCAL_URL: &str = "http://localhost:6233";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6233";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub default_profile: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileConfig>,
    #[serde(default)]
    pub serve: ServeConfig,
    #[serde(default)]
    pub agents: BTreeMap<String, AgentConfig>,
    #[serde(default)]
    pub workflows: BTreeMap<String, WorkflowConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    pub url: Option<String>,
    pub token_env: Option<String>,
    pub token: Option<String>,
    #[serde(default)]
    pub embedded: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub max_concurrency: Option<usize>,
    /// How many runs of each workflow the engine holds at once, under way or waiting for a
    /// slot, not counting those asleep (default 4096); past it, new runs wait queued in the
    /// store and start as others end.
    pub workflows_in_memory: Option<usize>,
    pub max_body_bytes: Option<usize>,
    /// The variable that holds the engine's bearer token (default `RESTACK_API_BEARER_TOKEN`).
    pub token_env: Option<String>,
    /// How long running agents may finish after SIGINT/SIGTERM (default 10s).
    pub shutdown_grace: Option<String>,
    /// `full` (default: fsync every group commit) or `normal` (survives a crash of the engine,
    /// not of the machine).
    pub sync: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub command: Vec<String>,
    pub timeout: Option<String>,
    #[serde(default)]
    pub retries: u32,
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Variables the engine keeps from agents (those that hold its token) that this agent
    /// inherits anyway: one that calls the API back needs the token, and a copy in `env`
    /// would put the secret in the file.
    #[serde(default)]
    pub pass_env: Vec<String>,
    pub input_schema: Option<toml::Value>,
    pub output_schema: Option<toml::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowConfig {
    pub steps: Vec<StepConfig>,
    pub input_schema: Option<toml::Value>,
}

/// `{ agent = "NAME" }` or `{ sleep = "10s" }`; exactly one of the two.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    pub agent: Option<String>,
    pub sleep: Option<String>,
}

/// A loaded configuration: the file's contents and where it was (relative paths in it are
/// relative to its folder).
#[derive(Debug, Clone)]
pub struct Config {
    pub path: Option<PathBuf>,
    pub dir: PathBuf,
    pub file: FileConfig,
}

/// Where the client sends its requests.
#[derive(Debug, Clone)]
pub enum Target {
    Url(String),
    Embedded,
}

/// The profile after precedence has been applied.
#[derive(Debug, Clone)]
pub struct ResolvedProfile {
    pub name: String,
    pub target: Target,
    pub token: Option<String>,
    /// Why the profile's token was not sent, for the hint on a 401: `--url` or `RESTACK_URL`
    /// sent this command away from the profile's own URL, or `token_env` names a variable that
    /// is not set.
    pub no_token_because: Option<String>,
}

/// The engine's settings, resolved from `[serve]`, flags and defaults.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub listen: String,
    pub data_dir: PathBuf,
    pub max_concurrency: usize,
    pub workflows_in_memory: usize,
    pub max_body_bytes: usize,
    pub token: Option<String>,
    /// The variables that may hold a bearer token (`RESTACK_API_BEARER_TOKEN` and the one
    /// `token_env` names): kept out of agents' environments.
    pub token_vars: Vec<String>,
    pub shutdown_grace: Duration,
    pub sync_full: bool,
    pub config_dir: PathBuf,
    pub agents: BTreeMap<String, AgentConfig>,
    pub workflows: BTreeMap<String, WorkflowConfig>,
}

/// The per-user data folder: the engine's default `data_dir` and the run history live here.
pub fn user_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("restack")
}

impl Config {
    /// Loads `explicit` or `$RESTACK_CONFIG` (either must exist; an empty variable is unset),
    /// else `<config dir>/restack/config.toml` (which may be missing).
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let named = explicit.map(Path::to_path_buf).or_else(|| {
            std::env::var_os("RESTACK_CONFIG")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        });
        let (path, must_exist) = match named {
            Some(p) => (Some(p), true),
            None => (
                dirs::config_dir().map(|d| d.join("restack").join("config.toml")),
                false,
            ),
        };
        let Some(path) = path else {
            return Ok(Config::empty());
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                return Ok(Config::empty());
            }
            Err(e) => {
                return Err(Failure::usage(format!(
                    "cannot read config file {}: {e}",
                    path.display()
                ))
                .into());
            }
        };
        let config = Config::parse(&text, &path)?;
        config.warn_if_token_readable();
        Ok(config)
    }

    pub fn empty() -> Config {
        Config {
            path: None,
            dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            file: FileConfig::default(),
        }
    }

    /// Parses and checks a config file's text; `path` names it in errors and anchors relative
    /// paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let (line, col) = line_col(text, s.start);
                    format!(":{line}:{col}")
                })
                .unwrap_or_default();
            let mut message = plain_types(e.message().trim_end());
            // A value of the wrong type: which key's, and for a duration, what one looks like.
            if let Some(key) = e.span().and_then(|s| key_before(text, s.start)) {
                if DURATION_KEYS.contains(&key) && message.ends_with("expected a string") {
                    message.push_str(" such as \"30s\" or \"5m\"");
                }
                message = format!("`{key}`: {message}");
            }
            Failure::usage(format!(
                "invalid config file {}{at}: {message}",
                path.display()
            ))
        })?;
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let dir = abs
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let config = Config {
            path: Some(abs),
            dir,
            file,
        };
        config.check().map_err(|f| {
            let at = check::locate(text, &f.at)
                .map(|offset| {
                    let (line, col) = line_col(text, offset);
                    format!(":{line}:{col}")
                })
                .unwrap_or_default();
            Failure::usage(format!(
                "invalid config file {}{at}: {:#}",
                path.display(),
                f.error
            ))
        })?;
        Ok(config)
    }

    pub fn has_agent(&self, name: &str) -> bool {
        BUILTIN_AGENTS.contains(&name) || self.file.agents.contains_key(name)
    }

    /// Every profile name a user may pass: the file's and the two built-ins.
    pub fn profile_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.file.profiles.keys().cloned().collect();
        for b in ["local", "embedded"] {
            if !names.iter().any(|n| n == b) {
                names.push(b.to_string());
            }
        }
        names.sort();
        names
    }

    /// Applies the precedence: `profile_flag` (already merged with `RESTACK_PROFILE` by clap),
    /// then `default_profile`, then `local`; `url_flag` (merged with `RESTACK_URL`, never
    /// empty) overrides the profile's URL; `RESTACK_API_BEARER_TOKEN` overrides the profile's
    /// token.
    pub fn resolve_profile(
        &self,
        profile_flag: Option<&str>,
        url_flag: Option<&str>,
    ) -> Result<ResolvedProfile> {
        // An empty RESTACK_PROFILE means unset, as an empty RESTACK_URL does.
        let name = profile_flag
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .or_else(|| self.file.default_profile.clone())
            .unwrap_or_else(|| "local".to_string());
        let builtin = match name.as_str() {
            "local" => Some(ProfileConfig {
                url: Some(DEFAULT_LOCAL_URL.to_string()),
                ..Default::default()
            }),
            "embedded" => Some(ProfileConfig {
                embedded: true,
                ..Default::default()
            }),
            _ => None,
        };
        let mut profile = match self.file.profiles.get(&name).cloned().or(builtin.clone()) {
            Some(p) => p,
            None => {
                return Err(Failure::usage(format!(
                    "unknown profile `{name}`; known profiles: {}",
                    self.profile_names().join(", ")
                ))
                .into());
            }
        };
        // The file's `local` or `embedded` that names no server (only a token, say) keeps the
        // built-in's.
        if let Some(b) = builtin.filter(|_| profile.url.is_none() && !profile.embedded) {
            (profile.url, profile.embedded) = (b.url, b.embedded);
        }
        let target = if let Some(url) = url_flag {
            check_url(url).map_err(|e| Failure::usage(format!("--url / RESTACK_URL: {e}")))?;
            Target::Url(url.trim_end_matches('/').to_string())
        } else if profile.embedded {
            Target::Embedded
        } else {
            // Only --url or RESTACK_URL can stand in for a profile that holds only a token.
            let Some(url) = &profile.url else {
                return Err(Failure::usage(format!(
                    "profile `{name}` names no server: set its `url` (or `embedded = true`), or pass --url"
                ))
                .into());
            };
            Target::Url(url.trim_end_matches('/').to_string())
        };
        // The variable for any server first; then the profile's own token (its variable, or
        // the file's), which belongs to the profile's server: a `RESTACK_URL` left over in a
        // shell or a CI job must not carry a cloud token to whatever host it names. A profile
        // that names no server takes its server from --url, and its token goes there.
        let mut token = env_token(TOKEN_VAR)?;
        // Said on a 401 when no token went at all; one that went and was refused has its
        // own hint.
        let mut no_token_because = None;
        if token.is_none() {
            let own = match &profile.token_env {
                Some(var) => env_token(var)?,
                None => None,
            };
            let own = match own {
                Some(t) => Some(t),
                None => profile
                    .token
                    .as_deref()
                    .map(|t| clean_token(t, &format!("profile `{name}`")))
                    .transpose()?,
            };
            let elsewhere = match (&profile.url, url_flag) {
                (_, Some(_)) if profile.embedded => Some("the engine in this process".to_string()),
                (Some(own_url), Some(other)) if !same_server(own_url, other) => {
                    Some(crate::output::redact_url(own_url).into_owned())
                }
                _ => None,
            };
            match (own, elsewhere) {
                (Some(_), Some(own_url)) => {
                    no_token_because = Some(format!(
                        "profile `{name}`'s token is sent only to its own url ({own_url}), not to --url / RESTACK_URL: export {TOKEN_VAR} to send a token there"
                    ))
                }
                (Some(t), None) => token = Some(t),
                (None, _) => {
                    no_token_because = profile.token_env.as_ref().map(|var| {
                        format!(
                            "profile `{name}` reads its token from {var} (token_env), which is not set or empty"
                        )
                    })
                }
            }
        }
        Ok(ResolvedProfile {
            name,
            target,
            token,
            no_token_because,
        })
    }

    /// The engine's settings; `listen` and `data_dir` flags win over `[serve]`.
    pub fn engine_settings(
        &self,
        listen: Option<&str>,
        data_dir: Option<&Path>,
    ) -> Result<EngineSettings> {
        let s = &self.file.serve;
        let data_dir = match data_dir {
            Some(d) => d.to_path_buf(),
            None => match &s.data_dir {
                Some(d) => self.dir.join(d),
                None => user_data_dir(),
            },
        };
        let token_var = s.token_env.as_deref().unwrap_or(TOKEN_VAR);
        Ok(EngineSettings {
            listen: listen
                .map(str::to_string)
                .or_else(|| s.listen.clone())
                .unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
            data_dir,
            max_concurrency: s.max_concurrency.unwrap_or(16),
            workflows_in_memory: s
                .workflows_in_memory
                .unwrap_or(crate::engine::WORKFLOWS_IN_MEMORY),
            max_body_bytes: s.max_body_bytes.unwrap_or(1024 * 1024),
            // Trimmed like the client's, so one exported value works on both sides.
            // Auth is on when either variable holds a token (DESIGN.md); `token_env`'s wins.
            token: match env_token(token_var)? {
                Some(t) => Some(t),
                None => env_token(TOKEN_VAR)?,
            },
            token_vars: if token_var == TOKEN_VAR {
                vec![TOKEN_VAR.to_string()]
            } else {
                vec![TOKEN_VAR.to_string(), token_var.to_string()]
            },
            shutdown_grace: match &s.shutdown_grace {
                Some(g) => parse_duration(g)?,
                None => Duration::from_secs(10),
            },
            sync_full: s.sync.as_deref() != Some("normal"),
            config_dir: self.dir.clone(),
            agents: self.file.agents.clone(),
            workflows: self.file.workflows.clone(),
        })
    }

    /// A token stored in a file others can read is a leak waiting to happen; say so.
    fn warn_if_token_readable(&self) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let has_token = self.file.profiles.values().any(|p| p.token.is_some());
            if let (true, Some(path)) = (has_token, &self.path)
                && let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o044 != 0
            {
                eprintln!(
                    "warning: {} holds a token and is readable by others; run `chmod 600 {}` or use token_env",
                    path.display(),
                    path.display()
                );
            }
        }
    }
}

/// The keys whose values are durations, written as strings.
const DURATION_KEYS: [&str; 3] = ["timeout", "sleep", "shutdown_grace"];

/// The key whose value starts at `offset` (`timeout = 5`, `{ sleep = 5 }`), if a value does.
fn key_before(text: &str, offset: usize) -> Option<&str> {
    let line = text.get(..offset)?.rsplit('\n').next()?;
    let key = line.trim_end().strip_suffix('=')?.trim_end();
    let key = key.strip_suffix(['"', '\'']).unwrap_or(key);
    let start = key
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .map_or(0, |i| i + 1);
    Some(&key[start..]).filter(|k| !k.is_empty())
}

/// serde's messages name Rust's types ("expected usize"); a config's reader knows TOML's.
fn plain_types(message: &str) -> String {
    let mut out = message.to_string();
    for (rust, plain) in [
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected u64", "expected a whole number, 0 or more"),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected u16", "expected a whole number, 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected a boolean", "expected true or false"),
        ("expected a sequence", "expected an array"),
    ] {
        out = out.replace(rust, plain);
    }
    out
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// The variable that holds a bearer token for any server, over the profile's.
pub const TOKEN_VAR: &str = "RESTACK_API_BEARER_TOKEN";

/// The token in `var`, if it holds one.
pub fn env_token(var: &str) -> Result<Option<String>> {
    match std::env::var(var) {
        Ok(t) if !t.trim().is_empty() => Ok(Some(clean_token(&t, var)?)),
        // Set, but no token could be read from it: refuse it, or an engine would start with
        // auth off while the user believes it on.
        Err(std::env::VarError::NotUnicode(_)) => Err(Failure::usage(format!(
            "the token from {var} holds bytes that are not UTF-8, which an HTTP header cannot carry"
        ))
        .into()),
        _ => Ok(None),
    }
}

/// A token pasted from a file often ends in a line break; anything else outside printable
/// ASCII (a break inside, an accented letter) cannot travel in a header byte for byte, so a
/// client could never present it, and is the user's to fix rather than a network failure.
fn clean_token(token: &str, from: &str) -> Result<String> {
    let t = token.trim();
    if !t.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
        return Err(Failure::usage(format!(
            "the token from {from} holds a character outside printable ASCII (a line break, an accented letter?), which an HTTP header cannot carry"
        ))
        .into());
    }
    Ok(t.to_string())
}

fn check_url(url: &str) -> Result<()> {
    // Errors show the URL without its credentials: they end up in CI logs.
    let shown = crate::output::redact_url(url);
    // `localhost:6233` parses with `localhost` as its scheme; `127.0.0.1:6233` does not parse.
    // Either way the advice is the scheme, shown with the host when that is all that is there
    // (and never with credentials, which `redact_url` cannot find without a scheme).
    let no_scheme = || {
        let shown = match url.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url.to_string(),
        };
        let plain_host = !url.contains('@')
            && !url.contains("//")
            && !url.starts_with('/')
            && reqwest::Url::parse(&format!("http://{url}")).is_ok_and(|u| u.host().is_some());
        if plain_host {
            anyhow!("invalid URL {shown:?}: it needs its scheme, as in http://{shown}")
        } else {
            anyhow!("invalid URL {shown:?}: it needs its scheme, http:// or https://")
        }
    };
    // Without `://` (which the URL standard lets `http:host` and `http:/host` do without),
    // nothing here could tell credentials from the host to hide them in messages.
    let Some((_, after)) = url.split_once("://") else {
        return Err(no_scheme());
    };
    // `http:///host` works in a parser, which skips the slashes, but is no way to write a
    // server's URL.
    if after.starts_with('/') {
        bail!("invalid URL {shown:?}: write the server right after `://`, as in http://host:6233");
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| anyhow!("invalid URL {shown:?}: {e}"))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        bail!("invalid URL {shown:?}: the scheme must be http or https");
    }
    // API paths are appended to the base, so anything after its path would end up in front
    // of them (`…?x=1/health`).
    if parsed.query().is_some() || parsed.fragment().is_some() {
        bail!("invalid URL {shown:?}: a server's base URL takes no query (`?`) or fragment (`#`)");
    }
    Ok(())
}

/// `10s`, `5m`, `1h 30m` (humantime).
pub fn parse_duration(s: &str) -> Result<Duration> {
    humantime::parse_duration(s.trim())
        .map_err(|e| anyhow!("invalid duration {s:?}: {e} (examples: 30s, 5m, 1h30m)"))
}

pub fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

pub fn compile_schema(schema: &Value) -> Result<jsonschema::Validator> {
    jsonschema::validator_for(schema).map_err(|e| {
        // Where in the schema: `"objekt" is not valid…` alone leaves the reader to search.
        let at = e.instance_path.to_string();
        match at.is_empty() {
            true => anyhow!("invalid JSON Schema: {e}"),
            false => anyhow!("invalid JSON Schema at {at}: {e}"),
        }
    })
}

/// Whether two URLs name the same server, as users write them: the case of the scheme and
/// host, a default port spelled out and a trailing `/` do not count; the path (which can name
/// a tenant behind a gateway) and the credentials do.
pub fn same_server(a: &str, b: &str) -> bool {
    match (reqwest::Url::parse(a), reqwest::Url::parse(b)) {
        (Ok(x), Ok(y)) => {
            x.scheme() == y.scheme()
                && x.host_str() == y.host_str()
                && x.port_or_known_default() == y.port_or_known_default()
                && x.username() == y.username()
                && x.password() == y.password()
                && x.path().trim_end_matches('/') == y.path().trim_end_matches('/')
        }
        _ => a.trim_end_matches('/') == b.trim_end_matches('/'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_configs_parse() {
        for (name, text) in [
            (
                "config.example.toml",
                include_str!("../../config.example.toml"),
            ),
            (
                "examples/restack.toml",
                include_str!("../../examples/restack.toml"),
            ),
        ] {
            let c =
                Config::parse(text, Path::new(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(
                !c.file.agents.is_empty() && !c.file.workflows.is_empty(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_files_embedded_profile_without_a_url_stays_in_process() {
        let c = Config::parse(
            "[profiles.embedded]\ntoken_env = \"T\"\n",
            Path::new("x.toml"),
        )
        .unwrap();
        let p = c.resolve_profile(Some("embedded"), None).unwrap();
        assert!(matches!(p.target, Target::Embedded), "{:?}", p.target);
    }

    /// A profile that holds only a token is no error until it is used without a URL.
    #[test]
    fn a_profile_without_a_url_needs_one_from_the_command_line() {
        let c = Config::parse("[profiles.ci]\ntoken_env = \"T\"\n", Path::new("x.toml")).unwrap();
        let err = c.resolve_profile(Some("ci"), None).unwrap_err().to_string();
        assert!(err.contains("profile `ci` names no server"), "{err}");
        let p = c.resolve_profile(Some("ci"), Some("http://h:1")).unwrap();
        assert!(matches!(p.target, Target::Url(ref u) if u == "http://h:1"));
        // `local` knows its server.
        let c =
            Config::parse("[profiles.local]\ntoken_env = \"T\"\n", Path::new("x.toml")).unwrap();
        let p = c.resolve_profile(Some("local"), None).unwrap();
        assert!(matches!(p.target, Target::Url(ref u) if u == DEFAULT_LOCAL_URL));
    }

    #[test]
    fn a_typo_names_line_and_column() {
        let err = Config::parse(
            "[serve]\nlisten = \"127.0.0.1:1\"\nmax_concurency = 3\n",
            Path::new("x.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("x.toml:3:1"), "{err}");
        assert!(err.contains("max_concurency"), "{err}");
    }

    /// A value of the wrong type names its key, and a duration says what one looks like.
    #[test]
    fn a_wrong_type_names_its_key() {
        for (text, says) in [
            (
                "[agents.a]\ncommand = [\"x\"]\ntimeout = 5\n",
                "x.toml:3:11: `timeout`: invalid type: integer `5`, expected a string such as \"30s\" or \"5m\"",
            ),
            (
                "[agents.a]\ncommand = [\"x\"]\n[workflows.w]\nsteps = [{ agent = \"a\" }, { sleep = 5 }]\n",
                "`sleep`: invalid type: integer `5`, expected a string such as",
            ),
            (
                "[agents.a]\ncommand = [\"x\"]\nenv = { N = 1 }\n",
                "`N`: invalid type: integer `1`, expected a string",
            ),
            (
                "[serve]\nmax_concurrency = \"4\"\n",
                "`max_concurrency`: invalid type: string \"4\", expected a whole number",
            ),
        ] {
            let err = Config::parse(text, Path::new("x.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    /// A bad schema says where in it, and a bad duration what a good one looks like.
    #[test]
    fn a_bad_schema_or_duration_says_where_and_what() {
        for (text, says) in [
            (
                "[agents.a]\ncommand = [\"x\"]\ninput_schema = { properties = { n = { type = \"objekt\" } } }\n",
                "invalid JSON Schema at /properties/n/type: \"objekt\"",
            ),
            (
                "[agents.a]\ncommand = [\"x\"]\ntimeout = \"fast\"\n",
                "invalid duration \"fast\": expected number at 0 (examples: 30s, 5m, 1h30m)",
            ),
        ] {
            let err = format!(
                "{:#}",
                Config::parse(text, Path::new("x.toml")).unwrap_err()
            );
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn a_workflow_step_must_name_a_known_agent() {
        let err = Config::parse(
            "[workflows.w]\nsteps = [{ agent = \"nope\" }]\n",
            Path::new("x.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown agent `nope`"), "{err}");
    }
}
