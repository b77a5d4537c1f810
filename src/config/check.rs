//! What the TOML grammar cannot check (durations, URLs, schemas, names, steps that name real
//! agents), and where in the file each failure lies, so that its error names line and column
//! as a syntax error's does.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use toml::de::{DeTable, DeValue};

use super::{
    BUILTIN_AGENTS, Config, check_url, clean_token, compile_schema, parse_duration, toml_to_json,
};

/// The longest a workflow's sleep step may last. Its wake-up time is stored and shown, and
/// past this it would leave the years RFC 3339 (and every client) can write.
/// (humantime's year: 365.25 days, so that "100y" itself passes.)
const LONGEST_SLEEP: Duration = Duration::from_secs(100 * 31_557_600);

/// The most runs a concurrency setting may allow at once: far past what any machine runs, and
/// far below what a semaphore can count.
const MOST_AT_ONCE: usize = 1_000_000;
/// The largest request body an engine may take.
const MAX_BODY_BYTES: usize = 32 << 20;

/// A failed check and the keys that lead to the value at fault (`agents`, `x`, `timeout`); an
/// array element's key is its index.
pub struct Fault {
    pub at: Vec<String>,
    pub error: anyhow::Error,
}

/// `Err(Fault)` at `keys`, with `error` (a `Result`'s error, or a message).
fn fault<T>(keys: &[&str], error: impl Into<anyhow::Error>) -> Result<T, Fault> {
    Err(Fault {
        at: keys.iter().map(|k| k.to_string()).collect(),
        error: error.into(),
    })
}

/// Puts `keys` on a check's failure.
fn at<T>(keys: &[&str], checked: Result<T>) -> Result<T, Fault> {
    checked.or_else(|e| fault(keys, e))
}

fn at_most(keys: &[&str], what: &str, n: Option<usize>) -> Result<(), Fault> {
    match n {
        Some(0) => fault(keys, anyhow!("{what} must be at least 1")),
        Some(n) if n > MOST_AT_ONCE => {
            fault(keys, anyhow!("{what} must be at most {MOST_AT_ONCE}"))
        }
        _ => Ok(()),
    }
}

impl Config {
    pub(super) fn check(&self) -> Result<(), Fault> {
        for (name, p) in &self.file.profiles {
            if p.embedded && p.url.is_some() {
                return fault(
                    &["profiles", name, "url"],
                    anyhow!("profile `{name}` sets both `embedded` and `url`; choose one"),
                );
            }
            if let Some(t) = &p.token {
                at(
                    &["profiles", name, "token"],
                    clean_token(t, &format!("profile `{name}`")).map(drop),
                )?;
            }
            if let Some(url) = &p.url {
                at(
                    &["profiles", name, "url"],
                    check_url(url).with_context(|| format!("profile `{name}`")),
                )?;
            }
        }
        if let Some(d) = &self.file.default_profile
            && !self.profile_names().contains(d)
        {
            return fault(
                &["default_profile"],
                anyhow!(
                    "default_profile `{d}` is not a profile; known profiles: {}",
                    self.profile_names().join(", ")
                ),
            );
        }
        let s = &self.file.serve;
        if let Some(g) = &s.shutdown_grace {
            at(
                &["serve", "shutdown_grace"],
                parse_duration(g).context("[serve] shutdown_grace"),
            )?;
        }
        if let Some(sync) = &s.sync
            && sync != "full"
            && sync != "normal"
        {
            return fault(
                &["serve", "sync"],
                anyhow!("[serve] sync must be \"full\" or \"normal\", not {sync:?}"),
            );
        }
        if s.token_env
            .as_deref()
            .is_some_and(|v| v.is_empty() || v.contains(['=', '\0']))
        {
            return fault(
                &["serve", "token_env"],
                anyhow!("[serve] token_env must name an environment variable"),
            );
        }
        if let Some(listen) = &s.listen
            && !listen
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        {
            return fault(
                &["serve", "listen"],
                anyhow!(
                    "[serve] listen must be HOST:PORT (e.g. \"127.0.0.1:6233\"), not {listen:?}"
                ),
            );
        }
        // A run's input comes back in its answers (an `echo`'s output is its input); past
        // 32 MiB those would pass the 64 MiB a client reads of an answer.
        match s.max_body_bytes {
            Some(0) => {
                return fault(
                    &["serve", "max_body_bytes"],
                    anyhow!("[serve] max_body_bytes must be at least 1"),
                );
            }
            Some(n) if n > MAX_BODY_BYTES => {
                return fault(
                    &["serve", "max_body_bytes"],
                    anyhow!(
                        "[serve] max_body_bytes must be at most {MAX_BODY_BYTES} (32 MiB), not {n}"
                    ),
                );
            }
            _ => {}
        }
        at_most(
            &["serve", "max_concurrency"],
            "[serve] max_concurrency",
            s.max_concurrency,
        )?;
        if s.workflows_in_memory == Some(0) {
            return fault(
                &["serve", "workflows_in_memory"],
                anyhow!("[serve] workflows_in_memory must be at least 1"),
            );
        }
        for (name, a) in &self.file.agents {
            let keys = |key: &'static str| ["agents", name.as_str(), key];
            at(
                &["agents", name],
                check_name(name).with_context(|| format!("[agents.{name}]")),
            )?;
            if BUILTIN_AGENTS.contains(&name.as_str()) {
                return fault(
                    &["agents", name],
                    anyhow!("[agents.{name}]: `{name}` is a built-in agent; pick another name"),
                );
            }
            if a.command.is_empty() || a.command[0].is_empty() {
                return fault(
                    &keys("command"),
                    anyhow!(
                        "[agents.{name}] command must name a program, e.g. [\"python3\", \"agent.py\"]"
                    ),
                );
            }
            for (key, value) in &a.env {
                if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
                    return fault(
                        &keys("env"),
                        anyhow!(
                            "[agents.{name}] env: {key:?} cannot be set: a name must be non-empty without '=' or NUL, a value without NUL"
                        ),
                    );
                }
            }
            if let Some(t) = &a.timeout {
                let limit = at(
                    &keys("timeout"),
                    parse_duration(t).with_context(|| format!("[agents.{name}] timeout")),
                )?;
                if limit.is_zero() {
                    return fault(
                        &keys("timeout"),
                        anyhow!(
                            "[agents.{name}] timeout must be longer than 0s: every run would time out"
                        ),
                    );
                }
            }
            at_most(
                &keys("concurrency"),
                &format!("[agents.{name}] concurrency"),
                a.concurrency,
            )?;
            for (key, schema) in [
                ("input_schema", &a.input_schema),
                ("output_schema", &a.output_schema),
            ] {
                if let Some(s) = schema {
                    at(
                        &keys(key),
                        compile_schema(&toml_to_json(s))
                            .with_context(|| format!("[agents.{name}] {key}")),
                    )?;
                }
            }
        }
        for (name, w) in &self.file.workflows {
            at(
                &["workflows", name],
                check_name(name).with_context(|| format!("[workflows.{name}]")),
            )?;
            if w.steps.is_empty() {
                return fault(
                    &["workflows", name, "steps"],
                    anyhow!("[workflows.{name}] needs at least one step"),
                );
            }
            for (i, step) in w.steps.iter().enumerate() {
                let what = format!("[workflows.{name}] step {}", i + 1);
                let index = i.to_string();
                let keys = |key: &'static str| ["workflows", name.as_str(), "steps", &index, key];
                match (&step.agent, &step.sleep) {
                    (Some(agent), None) => {
                        if !self.has_agent(agent) {
                            return fault(
                                &keys("agent"),
                                anyhow!("{what}: unknown agent `{agent}`"),
                            );
                        }
                    }
                    (None, Some(d)) => {
                        let sleep = at(&keys("sleep"), parse_duration(d).context(what.clone()))?;
                        if sleep > LONGEST_SLEEP {
                            return fault(
                                &keys("sleep"),
                                anyhow!("{what}: a sleep of {d:?} is longer than 100 years"),
                            );
                        }
                    }
                    _ => {
                        return fault(
                            &["workflows", name, "steps", &index],
                            anyhow!(
                                "{what}: a step is either {{ agent = \"NAME\" }} or {{ sleep = \"DURATION\" }}"
                            ),
                        );
                    }
                }
            }
            if let Some(s) = &w.input_schema {
                at(
                    &["workflows", name, "input_schema"],
                    compile_schema(&toml_to_json(s))
                        .with_context(|| format!("[workflows.{name}] input_schema")),
                )?;
            }
        }
        Ok(())
    }
}

/// Agent and workflow names end up in URL paths: keep them to a safe alphabet.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        bail!("the name {name:?} may only hold letters, digits, '-', '_' and '.'");
    }
    // `.` and `..` are path segments a URL resolves away: such an agent could never be called.
    if name.chars().all(|c| c == '.') {
        bail!("the name {name:?} is made of dots only, which a URL path cannot carry");
    }
    Ok(())
}

/// The byte offset in `text` of the key (or array element) that `keys` lead to, or of the
/// last of them the file holds: a value set by a default has no place of its own.
pub fn locate(text: &str, keys: &[String]) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    locate_in(&DeValue::Table(doc.into_inner()), keys)
}

fn locate_in(value: &DeValue, keys: &[String]) -> Option<usize> {
    let (first, rest) = keys.split_first()?;
    let (offset, inner) = match value {
        DeValue::Table(t) => t
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == first.as_str())
            .map(|(k, v)| (k.span().start, v))?,
        DeValue::Array(a) => {
            let item = a.get(first.parse::<usize>().ok()?)?;
            (item.span().start, item)
        }
        _ => return None,
    };
    Some(locate_in(inner.get_ref(), rest).unwrap_or(offset))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    /// Each `(text, at, why)`: the text fails its check with `why`, at `at` (file:line:col).
    fn refused(cases: &[(&str, &str, &str)]) {
        for (text, at, why) in cases {
            let err = error(text);
            assert!(err.contains(at), "{text:?}: wants {at} in {err}");
            assert!(err.contains(why), "{text:?}: wants {why:?} in {err}");
        }
    }

    /// The error for `text`, which must fail its check.
    fn error(text: &str) -> String {
        format!(
            "{:#}",
            Config::parse(text, Path::new("x.toml")).unwrap_err()
        )
    }

    #[test]
    fn a_failed_check_names_the_line_and_column_of_its_key() {
        refused(&[
            (
                "[agents.a]\ncommand = [\"true\"]\ntimeout = \"5 parsecs\"\n",
                "x.toml:3:1:",
                "invalid duration",
            ),
            (
                "[agents.a]\ncommand = [\"true\"]\ntimeout = \"0s\"\n",
                "x.toml:3:1:",
                "longer than 0s",
            ),
            (
                "[agents.\"..\"]\ncommand = [\"true\"]\n",
                "x.toml:1:",
                "dots only",
            ),
            (
                "default_profile = \"cloud\"\n",
                "x.toml:1:1:",
                "is not a profile",
            ),
            (
                "[profiles.x]\n  url = \"nota url\"\n",
                "x.toml:2:3:",
                "invalid URL",
            ),
            // An array element: the second step's `agent` key.
            (
                "[workflows.w]\nsteps = [\n  { sleep = \"1s\" },\n  { agent = \"nope\" },\n]\n",
                "x.toml:4:5:",
                "unknown agent `nope`",
            ),
            // A whole table: its name in the header.
            (
                "[agents.echo]\ncommand = [\"true\"]\n",
                "x.toml:1:9:",
                "built-in",
            ),
            // Dotted keys lead to the same place as tables.
            (
                "serve.max_concurrency = 9000000000000000000\n",
                "x.toml:1:7:",
                "at most 1000000",
            ),
        ]);
    }

    /// Values that could never work are refused at load, where the file can be pointed at,
    /// not when a run or a request first meets them.
    #[test]
    fn values_that_cannot_work_are_refused_where_they_are() {
        refused(&[
            (
                "[serve]\ntoken_env = \"\"\n",
                "x.toml:2:1:",
                "token_env must name",
            ),
            ("[serve]\nmax_body_bytes = 0\n", "x.toml:2:1:", "at least 1"),
            (
                "[serve]\nmax_body_bytes = 33554433\n",
                "x.toml:2:1:",
                "at most 33554432",
            ),
            (
                "[serve]\nlisten = \"nonsense\"\n",
                "x.toml:2:1:",
                "HOST:PORT",
            ),
            (
                "[agents.a]\ncommand = [\"true\"]\nenv = { \"A=B\" = \"c\" }\n",
                "x.toml:3:1:",
                "cannot be set",
            ),
            (
                "[agents.a]\ncommand = [\"true\"]\nenv = { A = \"x\\u0000y\" }\n",
                "x.toml:3:1:",
                "cannot be set",
            ),
            (
                "[profiles.p]\nurl = \"http://h\"\ntoken = \"h\u{e9}llo\"\n",
                "x.toml:3:1:",
                "the token from profile `p` holds",
            ),
        ]);
    }

    /// What a listener can bind passes: names, IPv6 in brackets, port 0.
    #[test]
    fn listen_addresses_that_bind_pass() {
        for listen in ["127.0.0.1:6233", "[::1]:6233", "localhost:0", "0.0.0.0:80"] {
            let text = format!("[serve]\nlisten = \"{listen}\"\n");
            Config::parse(&text, Path::new("x.toml")).unwrap_or_else(|e| panic!("{listen}: {e:#}"));
        }
    }

    /// Past what a semaphore can count, the engine would panic at start-up; it is a config
    /// error instead.
    #[test]
    fn concurrency_has_a_ceiling() {
        refused(&[(
            "[agents.a]\ncommand = [\"true\"]\nconcurrency = 9000000000000000000\n",
            "x.toml:3:1:",
            "concurrency must be at most",
        )]);
    }
}
