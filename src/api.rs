//! Wire types shared by the client and the engine.
//!
//! The spec (`shared/spec/restack-api.openapi.yaml`) is the contract; these types add only the
//! extensions DESIGN.md allows. Deserialisation is lenient on purpose: the client must cope with
//! other servers (Restack Cloud adds fields such as `agentId`), so nothing here denies unknown
//! fields and every field the spec marks optional is an `Option`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Whether a run is an agent run or a workflow run: it picks the URL area and the name field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Agent,
    Workflow,
}

impl Kind {
    /// How the store writes it.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// The inverse of [`Kind::code`].
    pub fn from_code(code: i64) -> Kind {
        if code == 1 {
            Kind::Workflow
        } else {
            Kind::Agent
        }
    }

    /// The URL segment: `/api/agents/...` or `/api/workflows/...`.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Agent => "agents",
            Kind::Workflow => "workflows",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Agent => "agent",
            Kind::Workflow => "workflow",
        }
    }

    /// The field that carries the name in a run-status object.
    pub fn name_field(self) -> &'static str {
        match self {
            Kind::Agent => "agentName",
            Kind::Workflow => "workflowName",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "agent" | "agents" => Some(Kind::Agent),
            "workflow" | "workflows" => Some(Kind::Workflow),
            _ => None,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The spec's status enum. Other servers may send values outside it; see [`RunStatus::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Running,
    Completed,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, RunStatus::Completed | RunStatus::Failed)
    }

    /// Lenient parse for what remote servers send: case-insensitive, and the terminal words
    /// other engines use (`canceled`, `timed_out`, ...) count as failed so a follow ends.
    pub fn parse(s: &str) -> Option<RunStatus> {
        match s.to_ascii_lowercase().as_str() {
            "queued" | "pending" | "scheduled" => Some(RunStatus::Queued),
            "running" | "started" | "in_progress" => Some(RunStatus::Running),
            "completed" | "succeeded" | "success" => Some(RunStatus::Completed),
            "failed" | "canceled" | "cancelled" | "terminated" | "timed_out" | "error" => {
                Some(RunStatus::Failed)
            }
            _ => None,
        }
    }

    pub fn from_code(code: i64) -> RunStatus {
        match code {
            0 => RunStatus::Queued,
            1 => RunStatus::Running,
            2 => RunStatus::Completed,
            _ => RunStatus::Failed,
        }
    }

    pub fn code(self) -> i64 {
        match self {
            RunStatus::Queued => 0,
            RunStatus::Running => 1,
            RunStatus::Completed => 2,
            RunStatus::Failed => 3,
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Body of `POST /api/{agents|workflows}/{name}`. The body itself is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Map<String, Value>>,
}

/// Answer to a schedule call. `status` is optional because some servers leave it out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleResponse {
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
}

/// One step of a workflow run, as the engine reports it (an extension field).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepInfo {
    pub index: usize,
    /// `agent NAME` or `sleep DURATION`.
    pub step: String,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// While the step goes on: why its last attempt failed, and when the next begins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<String>,
}

/// The run-status object of `GET /api/{agents|workflows}/{name}/{runId}`; one type for both
/// kinds, the name lands in `agentName` or `workflowName`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunInfo {
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_name: Option<String>,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canceled: Option<bool>,
    /// While the run goes on (extensions): why its last attempt (a workflow's: its current
    /// step's) failed, and when the next attempt begins, while it waits for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepInfo>>,
    /// The server's own word for the status, when it is not the spec's (`canceled`,
    /// `timed_out`), so that the text views can show it beside the status it counts as.
    #[serde(skip)]
    pub said: Option<String>,
}

impl RunInfo {
    pub fn kind(&self) -> Kind {
        if self.workflow_name.is_some() {
            Kind::Workflow
        } else {
            Kind::Agent
        }
    }

    pub fn name(&self) -> &str {
        self.agent_name
            .as_deref()
            .or(self.workflow_name.as_deref())
            .unwrap_or("")
    }
}

/// `GET /api/runs`: newest first; `next` is the `before` cursor for the following page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunList {
    pub runs: Vec<RunInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One line of `GET .../{runId}/logs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    pub line: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Logs {
    pub lines: Vec<LogLine>,
    /// Earlier lines the answer leaves out (it holds a run's latest lines, up to a size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted: Option<u64>,
}

/// An entry of `GET /api/agents` or `GET /api/workflows`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogEntry {
    pub name: String,
    /// `builtin`, `command` or `workflow`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalog {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<CatalogEntry>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflows: Option<Vec<CatalogEntry>>,
}

/// Every error body the engine sends: `{"error": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// RFC 3339 in UTC with milliseconds, from Unix milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    // Clamped to the years RFC 3339 can write (humantime fails past 9999, and a failed
    // `Display` panics), whatever a database brings.
    let ms = ms.clamp(0, 253_402_300_799_999);
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How deep an input or an output may nest. A parser stops at 128 levels (serde_json's
/// limit); the answers that carry a run's input or output wrap it a few levels deeper, and a
/// run whose output its own status cannot carry would be stored but never read.
pub const MAX_NESTING: usize = 100;

/// Refuses an input or output (an object) nested deeper than [`MAX_NESTING`].
pub fn check_nesting(object: &serde_json::Map<String, Value>) -> Result<(), JsonError> {
    // Parsed values are at most 128 deep, so the recursion is bounded.
    fn depth(v: &Value) -> usize {
        match v {
            Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            Value::Object(fields) => 1 + fields.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }
    if 1 + object.values().map(depth).max().unwrap_or(0) > MAX_NESTING {
        Err(JsonError::Deep)
    } else {
        Ok(())
    }
}

/// Why [`parse_json`] refused a text.
#[derive(Debug)]
pub enum JsonError {
    /// Not JSON at all.
    Syntax(String),
    /// Valid JSON holding a number no `f64` can hold (`1e400`); where it is (`a.b.2`).
    Range(String),
    /// An object that names a key twice (which one counts is up to each parser: refused).
    Duplicate(String),
    /// An input or output nested deeper than [`MAX_NESTING`].
    Deep,
}

impl std::fmt::Display for JsonError {
    /// Reads after what was parsed: "request body is not valid JSON: ...".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonError::Syntax(e) => write!(f, "is not valid JSON: {e}"),
            JsonError::Range(at) if at.is_empty() => write!(f, "holds a number out of range"),
            JsonError::Range(at) => write!(f, "holds a number out of range at `{at}`"),
            JsonError::Duplicate(e) => write!(f, "has {e}"),
            JsonError::Deep => write!(f, "nests deeper than {MAX_NESTING} levels"),
        }
    }
}

/// Parses JSON that came from outside: a request body, an agent's stdout, `--input`, `--set`.
/// Numbers are kept exactly as written (serde_json's `arbitrary_precision`), so an integer
/// past 64 bits or a decimal with more digits than an `f64` holds is stored and echoed as sent
/// rather than rounded. A number no `f64` can hold at all (`1e400`) is refused, as serde_json
/// refuses it without that feature: the schema validator reads such a number as an `f64` and
/// cannot take one (see [`out_of_range`]).
///
/// An object that names a key twice is refused too: a parser keeps one of the two values
/// (serde_json the last) and drops the other without a word.
pub fn parse_json(text: &[u8]) -> Result<Value, JsonError> {
    let value: Value = serde_json::from_slice(text).map_err(|e| {
        // serde_json stops at 128 levels and calls that a syntax error; it is this one.
        if e.to_string().contains("recursion limit exceeded") {
            JsonError::Deep
        } else {
            JsonError::Syntax(e.to_string())
        }
    })?;
    if let Err(e) = serde::de::DeserializeSeed::deserialize(
        UniqueKeys,
        &mut serde_json::Deserializer::from_slice(text),
    ) {
        return Err(JsonError::Duplicate(e.to_string()));
    }
    match out_of_range(&value) {
        None => Ok(value),
        Some(at) => Err(JsonError::Range(at)),
    }
}

/// Walks a JSON text and fails at the first object that names a key twice.
#[derive(Clone, Copy)]
struct UniqueKeys;

impl<'de> serde::de::DeserializeSeed<'de> for UniqueKeys {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueKeys {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the key `{}` twice in one object",
                    clip(&key)
                )));
            }
            seen.insert(key);
            map.next_value_seed(self)?;
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Where the first number beyond `f64`'s range is, as a schema error names a place (`a.b.2`;
/// empty for the whole value), or `None` when every number fits.
pub fn out_of_range(v: &Value) -> Option<String> {
    let join = |head: String, rest: String| {
        if rest.is_empty() {
            head
        } else {
            format!("{head}.{rest}")
        }
    };
    match v {
        Value::Number(n) => n.as_f64().is_none().then(String::new),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| out_of_range(item).map(|at| join(i.to_string(), at))),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, item)| out_of_range(item).map(|at| join(k.clone(), at))),
        _ => None,
    }
}

/// A value a client sent, cut to a length an error message can repeat: a 60 kB run ID comes
/// back as its first 80 characters, not as a 60 kB error.
pub fn clip(s: &str) -> std::borrow::Cow<'_, str> {
    const KEEP: usize = 80;
    match s.char_indices().nth(KEEP) {
        Some((at, _)) => format!("{}…", &s[..at]).into(),
        None => s.into(),
    }
}

/// "an object", "a string", ...: for error messages about JSON values.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What starts a restack engine's `ETag` for a run: a client that sees it knows the engine
/// honours `sinceTag` (another server's `ETag` says nothing of that).
pub const TAG_PREFIX: &str = "restack-";

/// An entity tag without its quotes, or the `W/` a proxy may weaken it with.
pub fn bare_tag(tag: &str) -> &str {
    let tag = tag.trim();
    tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"')
}

#[cfg(test)]
mod tests {
    use super::rfc3339_ms;

    /// A time no timestamp can show is written as the nearest one that can, never a panic: a
    /// read of such a run used to abort the engine.
    #[test]
    fn times_out_of_range_are_clamped_not_a_panic() {
        assert_eq!(rfc3339_ms(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(-1), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_500), "1970-01-01T00:00:01.500Z");
    }
}
