//! What the engine can run: the built-in agents, command agents and workflows from the config,
//! with their schemas compiled once at start-up.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::api::{CatalogEntry, Kind};
use crate::config::{EngineSettings, compile_schema, parse_duration, toml_to_json};

pub const SLEEP_MAX_SECONDS: f64 = 86_400.0;

pub enum AgentImpl {
    Echo,
    Sleep,
    Command(CommandSpec),
}

pub struct CommandSpec {
    pub argv: Vec<String>,
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
    /// Variables of the engine's environment the agent must not inherit: those that hold the
    /// engine's bearer token. The agent's own `env` may still set them.
    pub hidden: Vec<String>,
}

impl CommandSpec {
    /// Why the program cannot be started, as far as can be told without starting it: a path
    /// that names no file, or a name no directory on PATH holds. Said at start-up, so that a
    /// typo shows before a run fails on it.
    pub fn missing_program(&self) -> Option<String> {
        use std::os::unix::fs::PermissionsExt;
        let runnable = |p: &Path| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        };
        let argv0 = self.argv.first()?;
        if argv0.contains('/') {
            // `./x` beside the config reads as `DIR/x`.
            let rel: PathBuf = Path::new(argv0)
                .components()
                .filter(|c| !matches!(c, Component::CurDir))
                .collect();
            let path = self.dir.join(rel);
            return match path.metadata() {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Some(format!("{} does not exist", path.display()))
                }
                Err(e) => Some(format!("{} cannot be read: {e}", path.display())),
                Ok(m) if !m.is_file() => Some(format!("{} is not a file", path.display())),
                Ok(_) if !runnable(&path) => Some(format!(
                    "{} is not executable (chmod +x it)",
                    path.display()
                )),
                Ok(_) => None,
            };
        }
        let dirs = self
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| std::ffi::OsString::from(v))
            .or_else(|| std::env::var_os("PATH"))?;
        let found = std::env::split_paths(&dirs).any(|d| runnable(&d.join(argv0)));
        (!found).then(|| format!("`{argv0}` is not on PATH"))
    }
}

pub struct Schema {
    pub json: Value,
    pub validator: jsonschema::Validator,
}

impl Schema {
    fn new(json: Value) -> Result<Schema> {
        Ok(Schema {
            validator: compile_schema(&json)?,
            json,
        })
    }

    /// The first violation, phrased so that it names the field.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        // The validator reads such a number as an f64 and panics, which aborts the engine.
        // `parse_json` keeps them out of everything that comes in, so no path brings one here
        // today; this keeps it so for any path added later.
        if let Some(at) = crate::api::out_of_range(value) {
            return Err(if at.is_empty() {
                "number out of range".into()
            } else {
                format!("{at}: number out of range")
            });
        }
        match self.validator.iter_errors(value).next() {
            None => Ok(()),
            Some(e) => {
                let path = e.instance_path.to_string();
                if path.is_empty() {
                    Err(e.to_string())
                } else {
                    Err(format!(
                        "{}: {e}",
                        path.trim_start_matches('/').replace('/', ".")
                    ))
                }
            }
        }
    }
}

pub struct AgentDef {
    pub name: String,
    pub imp: AgentImpl,
    pub input_schema: Option<Schema>,
    pub output_schema: Option<Schema>,
    pub timeout: Option<Duration>,
    pub retries: u32,
    /// Per-agent concurrency limit, when the config sets one.
    pub slots: Option<Arc<Semaphore>>,
    pub concurrency: Option<usize>,
    pub timeout_text: Option<String>,
}

impl AgentDef {
    pub fn is_command(&self) -> bool {
        matches!(self.imp, AgentImpl::Command(_))
    }

    /// The built-in whose output is its input: it needs no time and has no effects.
    pub fn is_echo(&self) -> bool {
        matches!(self.imp, AgentImpl::Echo)
    }
}

pub enum StepDef {
    Agent(String),
    Sleep(Duration),
}

impl StepDef {
    pub fn describe(&self) -> String {
        match self {
            StepDef::Agent(a) => format!("agent {a}"),
            StepDef::Sleep(d) => format!("sleep {}", humantime::format_duration(*d)),
        }
    }

    /// Whether a step that began as `began` (its [`Self::describe`] then) is still this step.
    /// A sleep may change its length: the wake-up time it stored stands.
    pub fn is_still(&self, began: &str) -> bool {
        match self {
            StepDef::Sleep(_) => began.starts_with("sleep "),
            StepDef::Agent(a) => began.strip_prefix("agent ") == Some(a.as_str()),
        }
    }
}

pub struct WorkflowDef {
    pub name: String,
    pub steps: Vec<StepDef>,
    pub input_schema: Option<Schema>,
}

impl WorkflowDef {
    /// The agents its steps call, in order (sleeps pass their input on, so they are skipped).
    fn agent_steps(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.steps.iter().filter_map(|s| match s {
            StepDef::Agent(a) => Some(a.as_str()),
            StepDef::Sleep(_) => None,
        })
    }
}

#[derive(Default)]
pub struct Catalog {
    pub agents: HashMap<String, Arc<AgentDef>>,
    pub workflows: HashMap<String, Arc<WorkflowDef>>,
}

impl Catalog {
    pub fn from_settings(s: &EngineSettings) -> Result<Catalog> {
        let mut c = Catalog::default();
        c.agents.insert(
            "echo".into(),
            // Its output is its input: no schema to show beyond the input's.
            Arc::new(builtin(
                "echo",
                AgentImpl::Echo,
                json!({"type": "object"}),
                None,
            )?),
        );
        c.agents.insert(
            "sleep".into(),
            Arc::new(builtin(
                "sleep",
                AgentImpl::Sleep,
                json!({
                    "type": "object",
                    "required": ["seconds"],
                    "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": SLEEP_MAX_SECONDS}}
                }),
                Some(json!({
                    "type": "object",
                    "required": ["sleptSeconds"],
                    "properties": {"sleptSeconds": {"type": "number"}}
                })),
            )?),
        );
        for (name, a) in &s.agents {
            let schema = |v: &Option<toml::Value>| -> Result<Option<Schema>> {
                v.as_ref().map(|v| Schema::new(toml_to_json(v))).transpose()
            };
            let def = AgentDef {
                name: name.clone(),
                imp: AgentImpl::Command(CommandSpec {
                    argv: a.command.clone(),
                    dir: s.config_dir.clone(),
                    env: a.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    hidden: s
                        .token_vars
                        .iter()
                        .filter(|v| !a.pass_env.contains(v))
                        .cloned()
                        .collect(),
                }),
                input_schema: schema(&a.input_schema)?,
                output_schema: schema(&a.output_schema)?,
                timeout: a.timeout.as_deref().map(parse_duration).transpose()?,
                timeout_text: a.timeout.clone(),
                retries: a.retries,
                slots: a.concurrency.map(|n| Arc::new(Semaphore::new(n))),
                concurrency: a.concurrency,
            };
            c.agents.insert(name.clone(), Arc::new(def));
        }
        for (name, w) in &s.workflows {
            let steps = w
                .steps
                .iter()
                .map(|st| match (&st.agent, &st.sleep) {
                    (Some(a), _) => Ok(StepDef::Agent(a.clone())),
                    (None, Some(d)) => Ok(StepDef::Sleep(parse_duration(d)?)),
                    (None, None) => anyhow::bail!("workflow {name}: empty step"),
                })
                .collect::<Result<Vec<_>>>()?;
            let input_schema = w
                .input_schema
                .as_ref()
                .map(|v| Schema::new(toml_to_json(v)))
                .transpose()?;
            c.workflows.insert(
                name.clone(),
                Arc::new(WorkflowDef {
                    name: name.clone(),
                    steps,
                    input_schema,
                }),
            );
        }
        Ok(c)
    }

    pub fn exists(&self, kind: Kind, name: &str) -> bool {
        match kind {
            Kind::Agent => self.agents.contains_key(name),
            Kind::Workflow => self.workflows.contains_key(name),
        }
    }

    /// Whether `name` is a configured command agent (one with a process, retries and pauses).
    pub fn is_command_agent(&self, name: &str) -> bool {
        self.agents.get(name).is_some_and(|a| a.is_command())
    }

    /// Whether the runs of `kind` `name` may queue for slots, so that a long queue of them waits
    /// in the store (`engine::backlog`): a command agent's, and every workflow's (its steps may
    /// call one).
    pub fn queues_in_store(&self, kind: Kind, name: &str) -> bool {
        match kind {
            Kind::Agent => self.is_command_agent(name),
            Kind::Workflow => self.workflows.contains_key(name),
        }
    }

    /// Whether a run is finished the moment it is scheduled, its output being its input: an
    /// `echo` agent run (not a workflow step), unless an `output_schema` refuses that output (the
    /// normal path then fails the run with the reason). Such a run is stored completed by its
    /// insert: one write where a run otherwise costs three (insert, start, finish), and nothing
    /// left to execute or to recover.
    pub fn echoes_at_schedule(&self, kind: Kind, name: &str, input: &Value) -> bool {
        let Some(agent) = self.agents.get(name).filter(|_| kind == Kind::Agent) else {
            return false;
        };
        agent.is_echo()
            && agent
                .output_schema
                .as_ref()
                .is_none_or(|s| s.check(input).is_ok())
    }

    /// Checks an input at schedule time: the agent's schema, or for a workflow its own schema
    /// and else the first agent step's schema (that agent receives the input as it is).
    pub fn check_input(&self, kind: Kind, name: &str, input: &Value) -> Result<(), String> {
        let schema = match kind {
            Kind::Agent => self
                .agents
                .get(name)
                .and_then(|a| a.input_schema.as_ref())
                .map(|s| (s, format!("agent `{name}`"))),
            Kind::Workflow => self
                .workflows
                .get(name)
                .and_then(|w| self.workflow_input_schema(w)),
        };
        match schema {
            Some((s, whose)) => s
                .check(input)
                .map_err(|e| format!("input does not match the input_schema of {whose}: {e}")),
            None => Ok(()),
        }
    }

    /// The schema a workflow's input must match, and whose it is: the workflow's own, else
    /// its first agent step's. Sleep steps pass their input on, so that agent gets the
    /// workflow's input: a bad one is refused at schedule, not after the sleeps.
    fn workflow_input_schema<'a>(&'a self, w: &'a WorkflowDef) -> Option<(&'a Schema, String)> {
        if let Some(s) = &w.input_schema {
            return Some((s, format!("workflow `{}`", w.name)));
        }
        let first = w.agent_steps().next()?;
        let schema = self.agents.get(first)?.input_schema.as_ref()?;
        Some((schema, format!("agent `{first}`")))
    }

    /// The schema a workflow's output matches: its last agent step's that changes what it is
    /// given (a sleep or an `echo` after it passes that output on).
    fn workflow_output_schema<'a>(&'a self, w: &'a WorkflowDef) -> Option<&'a Schema> {
        let last = w.agent_steps().rev().find(|a| *a != "echo")?;
        self.agents.get(last)?.output_schema.as_ref()
    }

    pub fn agent_entries(&self) -> Vec<CatalogEntry> {
        let mut v: Vec<CatalogEntry> = self
            .agents
            .values()
            .map(|a| CatalogEntry {
                name: a.name.clone(),
                kind: if a.is_command() { "command" } else { "builtin" }.into(),
                input_schema: a.input_schema.as_ref().map(|s| s.json.clone()),
                output_schema: a.output_schema.as_ref().map(|s| s.json.clone()),
                steps: None,
                timeout: a.timeout_text.clone(),
                retries: a.is_command().then_some(a.retries),
                concurrency: a.concurrency,
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn workflow_entries(&self) -> Vec<CatalogEntry> {
        let mut v: Vec<CatalogEntry> = self
            .workflows
            .values()
            .map(|w| CatalogEntry {
                name: w.name.clone(),
                kind: "workflow".into(),
                input_schema: self.workflow_input_schema(w).map(|(s, _)| s.json.clone()),
                output_schema: self.workflow_output_schema(w).map(|s| s.json.clone()),
                steps: Some(w.steps.iter().map(StepDef::describe).collect()),
                timeout: None,
                retries: None,
                concurrency: None,
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

fn builtin(name: &str, imp: AgentImpl, input: Value, output: Option<Value>) -> Result<AgentDef> {
    Ok(AgentDef {
        name: name.into(),
        imp,
        input_schema: Some(Schema::new(input)?),
        output_schema: output.map(Schema::new).transpose()?,
        timeout: None,
        timeout_text: None,
        retries: 0,
        slots: None,
        concurrency: None,
    })
}

#[cfg(test)]
mod tests {
    use super::Schema;

    /// The validator panics on a number no f64 holds; a schema check must refuse it instead,
    /// whichever path the value took to get here.
    #[test]
    fn a_number_past_f64_is_refused_not_validated() {
        let schema = Schema::new(serde_json::json!({
            "type": "object",
            "properties": {"n": {"type": "number", "maximum": 5}}
        }))
        .unwrap();
        let value: serde_json::Value = serde_json::from_str(r#"{"n": [1, 1e400]}"#).unwrap();
        assert_eq!(schema.check(&value), Err("n.1: number out of range".into()));
        let fine: serde_json::Value =
            serde_json::from_str(r#"{"n": 4.99999999999999999999}"#).unwrap();
        assert_eq!(schema.check(&fine), Ok(()));
    }
}
