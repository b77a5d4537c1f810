//! `restack status [RUN_ID]`: one run in detail (optionally followed), or a table of this
//! profile's recent runs with their live status.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::Session;
use crate::api::Kind;
use crate::cli::{GlobalArgs, parse_duration};
use crate::client::{Bound, Client, Origin, fmt_secs};
use crate::config::{TOKEN_VAR, env_token};
use crate::error::{Exit, Failure};
use crate::{history, output};

/// How long `status` waits for one run's lookup, and for the table's, without `--timeout`.
const ONE_WAIT: Duration = Duration::from_secs(30);
const TABLE_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run to show; without it, a table of recent runs of this profile
    #[arg(value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub run_id: Option<String>,
    /// The run's agent (otherwise taken from the local history); without a run ID, the
    /// table shows only this agent's runs
    #[arg(long, value_name = "NAME", conflicts_with = "workflow", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub agent: Option<String>,
    /// The run's workflow (otherwise taken from the local history); without a run ID, the
    /// table shows only this workflow's runs
    #[arg(long, value_name = "NAME", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub workflow: Option<String>,
    /// Watch the run until it ends, then print its output as `agent run -f` does; the exit
    /// status reflects the run
    #[arg(short, long, requires = "run_id")]
    pub follow: bool,
    /// With --follow: stop waiting after this long (exit 6; the run goes on). Otherwise: how
    /// long the lookups may take (one run: exit 3; the table: rows not answered by then show
    /// `unknown`) [default without --follow: 30s for one run, 10s for the table]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// How many recent runs the table shows
    #[arg(long, default_value_t = 20, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// What to do with the one run once found: `logs` and `cancel` find it as `status` does.
    #[arg(skip)]
    pub action: Action,
}

/// What is done with one run, once the history, `--url` and the profile have said where it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Action {
    #[default]
    Show,
    Logs,
    Cancel,
}

/// One run, as another command names it (`logs`, `cancel`): found as `status` finds it.
#[derive(Debug, Args)]
pub struct OneRun {
    #[arg(value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub run_id: String,
    /// The run's agent (otherwise taken from the local history)
    #[arg(long, value_name = "NAME", conflicts_with = "workflow", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub agent: Option<String>,
    /// The run's workflow (otherwise taken from the local history)
    #[arg(long, value_name = "NAME", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub workflow: Option<String>,
}

impl OneRun {
    /// `status` for this run, doing `action` once it is found.
    pub fn status(self, action: Action) -> StatusArgs {
        StatusArgs {
            run_id: Some(self.run_id),
            agent: self.agent,
            workflow: self.workflow,
            follow: false,
            timeout: None,
            limit: 20,
            action,
        }
    }
}

impl StatusArgs {
    pub async fn run(self, g: &GlobalArgs) -> Result<Exit> {
        if self.run_id.is_none() && g.quiet && !g.json() {
            return self.ids(g);
        }
        // With --follow, zero means "look once"; a lookup alone would only time out.
        if !self.follow && self.timeout.is_some_and(|t| t.is_zero()) {
            let follow = if self.run_id.is_some() {
                " (or add --follow to look once)"
            } else {
                ""
            };
            return Err(
                Failure::usage(format!("--timeout: {}{follow}", crate::cli::ZERO_TIMEOUT)).into(),
            );
        }
        let started = Instant::now();
        let session = g.connect_within(self.follow, self.timeout).await?;
        let result = session
            .interruptible(async {
                match &self.run_id {
                    Some(id) => self.one(id, g, &session, started).await,
                    None => self.recent(g, &session, started).await,
                }
            })
            .await;
        session.finish(result).await
    }

    /// The agent or workflow named by `--agent` or `--workflow`.
    fn named(&self) -> Option<(Kind, &str)> {
        match (&self.agent, &self.workflow) {
            (Some(a), _) => Some((Kind::Agent, a)),
            (None, Some(w)) => Some((Kind::Workflow, w)),
            (None, None) => None,
        }
    }

    async fn one(&self, id: &str, g: &GlobalArgs, s: &Session, started: Instant) -> Result<Exit> {
        let (kind, name, entry) = match self.named() {
            Some((kind, name)) => (kind, name.to_string(), None),
            None => match history::find(id, &s.profile.name) {
                Some(e) => (e.kind, e.name.clone(), Some(e)),
                None => {
                    return Err(Failure::usage(format!(
                        "run {id} is not in the local history, so its agent or workflow is unknown"
                    ))
                    .with_hint("pass --agent NAME or --workflow NAME")
                    .into());
                }
            },
        };
        if let Some(e) = entry
            .as_ref()
            .filter(|e| e.profile != s.profile.name && !g.quiet)
        {
            eprintln!(
                "note: run {id} was scheduled with profile `{}`, not `{}`; asking {}",
                e.profile,
                s.profile.name,
                s.label()
            );
        }
        // `--url` wins over where the history says the run was scheduled; say so, since a
        // "not found" may follow.
        if let (Some(e), Some(url)) = (&entry, g.url()) {
            // A URL, or the embedded engine's description (never the same server as a URL).
            let recorded_url = e.url.contains("://");
            if (!recorded_url || !crate::config::same_server(&e.url, url)) && !g.quiet {
                eprintln!(
                    "note: run {id} was scheduled at {}; asking {} instead (--url)",
                    crate::output::redact_url(&e.url),
                    crate::output::redact_url(url)
                );
            }
        }
        let other_engine = entry
            .as_ref()
            .map(|e| e.url.clone())
            .filter(|u| on_another_embedded_engine(u, s));
        let elsewhere = match entry
            .filter(|e| e.profile == s.profile.name)
            .and_then(|e| recorded_elsewhere(&e.url, g, s))
        {
            Some(url) => {
                if !g.quiet {
                    eprintln!(
                        "note: run {id} was scheduled at {}; asking there",
                        crate::output::redact_url(&url)
                    );
                }
                Some(client_at(&url, env_token(TOKEN_VAR)?, g)?)
            }
            None => None,
        };
        let client = elsewhere.as_ref().unwrap_or(&s.client);
        // A run another embedded engine holds (another config's data_dir) is not found here;
        // the history says where it is.
        let placed = |e: anyhow::Error| {
            // Only a bare "not found" (a chain of one): a downcast sees through context, which
            // must not be lost.
            let not_found = e.chain().count() == 1
                && e.downcast_ref::<Failure>()
                    .is_some_and(|f| f.exit == Exit::NotFound);
            match &other_engine {
                Some(there) if not_found => match e.downcast::<Failure>() {
                    Ok(f) => f
                        .and_hint(format!(
                            "run {id} was scheduled with {there}: run this with the config that names that data_dir (-c)"
                        ))
                        .into(),
                    Err(e) => e,
                },
                _ => e,
            }
        };
        match self.action {
            Action::Logs => {
                return super::logs::print(client, kind, &name, id, g)
                    .await
                    .map_err(placed);
            }
            Action::Cancel => {
                return super::cancel::cancel(client, kind, &name, id, g)
                    .await
                    .map_err(placed);
            }
            Action::Show => {}
        }
        if self.follow {
            let bound = Bound {
                started,
                timeout: self.timeout,
            };
            return super::run::follow(client, kind, &name, id, bound, None, g)
                .await
                .map_err(placed);
        }
        let within = self
            .deadline(started, ONE_WAIT)
            .saturating_duration_since(Instant::now());
        let answer = client
            .run_within(kind, &name, id, None, within)
            .await
            .map_err(placed)?;
        if g.json() {
            output::json(&answer.raw);
        } else if g.quiet {
            // The status alone: `[ "$(restack status "$RUN" -q)" = completed ]`.
            output::out(&answer.typed.status.to_string());
        } else {
            output::out(&output::run_detail(
                &answer.typed,
                output::color_enabled(g.no_color),
            ));
        }
        Ok(Exit::Ok)
    }

    /// When the lookups must be done: `--timeout` counts from the command's start, a wait
    /// for another command's embedded engine included; the default from now, once connected.
    fn deadline(&self, started: Instant, default: Duration) -> Instant {
        // A timeout too large for the clock (`--timeout 500000000000y`) is a year: no wait.
        let far = || Instant::now() + Duration::from_secs(365 * 86_400);
        match self.timeout {
            Some(t) => started.checked_add(t).unwrap_or_else(far),
            None => Instant::now() + default,
        }
    }

    /// `status -q`: the run IDs alone, as `docker ps -q` lists containers. The history has
    /// them, so no server is asked, and no embedded engine opened.
    fn ids(&self, g: &GlobalArgs) -> Result<Exit> {
        let profile = g
            .load_config()?
            .resolve_profile(g.profile.as_deref(), g.url())?;
        for e in history::recent(&profile.name, g.url(), self.named(), self.limit as usize) {
            output::out(&e.run_id);
        }
        Ok(Exit::Ok)
    }

    async fn recent(&self, g: &GlobalArgs, s: &Session, started: Instant) -> Result<Exit> {
        // With --url, the runs scheduled at that server; else this profile's.
        let entries = history::recent(&s.profile.name, g.url(), self.named(), self.limit as usize);
        // Each run is asked for where it was scheduled (a run scheduled with --url lives on
        // that server).
        let urls: Vec<Option<String>> = entries
            .iter()
            .map(|e| recorded_elsewhere(&e.url, g, s))
            .collect();
        let mut clients: BTreeMap<&str, Client> = BTreeMap::new();
        if urls.iter().any(Option::is_some) {
            let token = env_token(TOKEN_VAR)?;
            for url in urls.iter().flatten() {
                if let Entry::Vacant(v) = clients.entry(url) {
                    v.insert(client_at(url, token.clone(), g)?);
                }
            }
        }
        // One server that accepts connections and never answers must not hold the table for
        // the usual request timeout, batch after batch: every lookup ends by one deadline.
        let deadline = self.deadline(started, TABLE_WAIT);
        // Each server's rows, eight lookups at a time (a long table must not open a connection,
        // and a descriptor, per row), the servers side by side: one stuck server must not hold
        // another's rows until the deadline.
        let mut by_server: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
        for (i, url) in urls.iter().enumerate() {
            by_server.entry(url.as_deref()).or_default().push(i);
        }
        let servers = by_server.into_iter().map(|(url, rows)| {
            let client = url.map_or(&s.client, |u| &clients[u]);
            let entries = &entries;
            futures_util::stream::iter(rows)
                .map(move |i| async move {
                    // Counted when the lookup starts, not when the table was built.
                    let within = deadline.saturating_duration_since(Instant::now());
                    let e = &entries[i];
                    let answer = client
                        .run_within(e.kind, &e.name, &e.run_id, None, within)
                        .await;
                    // A lookup that failed at the deadline was cut short, not refused.
                    (i, answer, Instant::now() >= deadline)
                })
                .buffer_unordered(8)
                .collect::<Vec<_>>()
        });
        let mut looked: Vec<_> = futures_util::future::join_all(servers)
            .await
            .into_iter()
            .flatten()
            .collect();
        looked.sort_by_key(|(i, _, _)| *i);
        let (answers, cut): (Vec<_>, Vec<bool>) =
            looked.into_iter().map(|(_, a, c)| (a, c)).unzip();
        // Failures of this profile's server as a whole fail the command: it cannot be reached,
        // refuses us, or answered none of its lookups. A run it no longer knows is a row, and
        // so is a run on another server (scheduled with --url) that is gone or refuses, and a
        // lookup the deadline cut short.
        let exit_of = |a: &Result<_>| match a {
            Err(e) => Some(anyhow::Error::downcast_ref::<Failure>(e).map(|f| f.exit)),
            Ok(_) => None,
        };
        let own: Vec<usize> = (0..answers.len()).filter(|&i| urls[i].is_none()).collect();
        let whole = own.iter().copied().find(|&i| {
            !cut[i]
                && matches!(
                    exit_of(&answers[i]),
                    Some(Some(Exit::Unreachable | Exit::Unauthorized))
                )
        });
        let lost =
            |i: &usize| matches!(exit_of(&answers[*i]), Some(e) if e != Some(Exit::NotFound));
        let fatal = whole.or_else(|| (!own.is_empty() && own.iter().all(lost)).then(|| own[0]));
        if let Some(i) = fatal {
            return Err(answers
                .into_iter()
                .nth(i)
                .and_then(Result::err)
                .expect("an error"));
        }
        let color = output::color_enabled(g.no_color);
        if g.json() {
            // A run that could not be looked up keeps its place, with `status` null and why,
            // under a key of its own: `error` is a failed run's.
            let list: Vec<Value> = entries
                .iter()
                .zip(&answers)
                .map(|(e, a)| match a {
                    Ok(a) => a.raw.clone(),
                    Err(err) => json!({
                        "runId": e.run_id, e.kind.name_field(): e.name, "status": null, "lookupError": format!("{err:#}")
                    }),
                })
                .collect();
            output::json(&Value::Array(list));
            return Ok(Exit::Ok);
        }
        if entries.is_empty() {
            // An unreadable history has said so already; "no runs yet" would be untrue.
            if !g.quiet && !history::unreadable() {
                let of = self
                    .named()
                    .map(|(kind, name)| format!(" of {kind} `{name}`"))
                    .unwrap_or_default();
                match g.url() {
                    Some(url) => eprintln!(
                        "no runs{of} scheduled from this machine at {} yet",
                        output::redact_url(url)
                    ),
                    None => eprintln!(
                        "no runs{of} scheduled from this machine with profile `{}` yet",
                        s.profile.name
                    ),
                }
            }
            return Ok(Exit::Ok);
        }
        let rows: Vec<_> = entries
            .iter()
            .zip(&answers)
            .map(|(e, a)| {
                let (status, created, took) = match a {
                    Ok(a) => {
                        let i = &a.typed;
                        (
                            output::run_status_word(i, color),
                            i.created_at.clone().unwrap_or_else(|| e.time.clone()),
                            output::took(i.created_at.as_deref(), i.completed_at.as_deref())
                                .map(fmt_secs)
                                .unwrap_or_default(),
                        )
                    }
                    Err(err) => {
                        let what = match err.downcast_ref::<Failure>().map(|f| f.exit) {
                            Some(Exit::NotFound) => "not found",
                            _ => "unknown",
                        };
                        (
                            output::other_status(what, color),
                            e.time.clone(),
                            String::new(),
                        )
                    }
                };
                (
                    e.run_id.clone(),
                    e.kind.to_string(),
                    e.name.clone(),
                    status,
                    created,
                    took,
                )
            })
            .collect();
        output::out(&output::runs_table(&rows, color));
        explain_missing_rows(&entries, &answers, s);
        Ok(Exit::Ok)
    }
}

/// Whether the history recorded a run on an embedded engine other than this command's (another
/// config's data_dir), which this command cannot see.
fn on_another_embedded_engine(recorded: &str, s: &Session) -> bool {
    recorded.starts_with("the embedded engine") && recorded != s.recorded_at()
}

/// Says on stderr why rows of the table have no status: runs another config's embedded engine
/// holds (the history says which), and lookups that failed (`-o json` has each error).
fn explain_missing_rows<T>(entries: &[history::Entry], answers: &[Result<T>], s: &Session) {
    let mut other_engines: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failed = 0;
    for (e, a) in entries.iter().zip(answers) {
        let Err(err) = a else { continue };
        let not_found = err.downcast_ref::<Failure>().map(|f| f.exit) == Some(Exit::NotFound);
        if not_found && on_another_embedded_engine(&e.url, s) {
            *other_engines.entry(&e.url).or_default() += 1;
        } else if !not_found {
            failed += 1;
        }
    }
    for (there, n) in other_engines {
        let were = if n == 1 { "was" } else { "were" };
        eprintln!(
            "note: {n} of these runs {were} scheduled with {there}: run this with the config that names that data_dir (-c)"
        );
    }
    if failed > 0 {
        eprintln!("note: {failed} of these runs could not be looked up; `-o json` says why");
    }
}

/// Where a run recorded in the history lives, when that is not the server this command talks
/// to: a run scheduled with `--url` is asked for at that URL, unless `--url` names one now.
fn recorded_elsewhere(recorded: &str, g: &GlobalArgs, s: &Session) -> Option<String> {
    // The history keeps the URL as it was given; a scheme is case-insensitive (`HTTP://`).
    let scheme = recorded
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase());
    let is_url = matches!(scheme.as_deref(), Some("http" | "https"));
    (g.url().is_none() && is_url && !crate::config::same_server(recorded, s.client.base()))
        .then(|| recorded.to_string())
}

/// A client for a server that is not this profile's. It carries only `token`, the one the user
/// exported for any server: the profile's own token is for the profile's server.
fn client_at(url: &str, token: Option<String>, g: &GlobalArgs) -> Result<Client> {
    let origin = Origin {
        label: crate::output::redact_url(url).into_owned(),
        profile: None,
        // Hints must reach this server, not the profile's.
        again: g.again_at(Some(url)),
        // When the exported token went and was refused, the usual hint says so.
        refused_hint: token.is_none().then(|| {
            format!(
                "only RESTACK_API_BEARER_TOKEN is sent to {shown}, never this profile's token: export it",
                shown = crate::output::redact_url(url)
            )
        }),
        embedded: false,
    };
    Client::new(url, token, origin, g.verbose > 0)
}
