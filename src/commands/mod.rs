//! One module per subcommand (an `Args` struct with `run()`), and what they share: the global
//! flags, the connection to a server (or to the in-process engine), and the dispatcher.

pub mod cancel;
pub mod completions;
pub mod embedded;
pub mod health;
pub mod logs;
pub mod run;
pub mod serve;
pub mod status;

use anyhow::Result;

use crate::cli::{AgentCommand, Cli, Command, Format, GlobalArgs, WorkflowCommand};
use crate::client::{Client, Origin};
use crate::config::{Config, ResolvedProfile, Target};
use crate::error::{Exit, Failure};
use crate::output;
use embedded::Embedded;

/// Runs the command on the runtime it needs: `serve` on all cores, the client commands on one
/// thread (a lean start, and all they do is wait on the network).
pub fn dispatch(cli: Cli) -> Result<Exit> {
    let exit = run_command(cli)?;
    match output::lost_output() {
        Some(e) => Err(anyhow::anyhow!("cannot write the result to stdout: {e}")),
        None => Ok(exit),
    }
}

fn run_command(cli: Cli) -> Result<Exit> {
    let g = cli.global;
    match cli.command {
        Command::Completions(args) => args.run(),
        Command::Serve(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(args.run(&g))
        }
        command => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                match command {
                    Command::Agent(AgentCommand::Run(args)) => {
                        args.run(crate::api::Kind::Agent, &g).await
                    }
                    Command::Workflow(WorkflowCommand::Run(args)) => {
                        args.run(crate::api::Kind::Workflow, &g).await
                    }
                    Command::Status(args) => args.run(&g).await,
                    Command::Logs(args) => args.run(&g).await,
                    Command::Cancel(args) => args.run(&g).await,
                    Command::Health(args) => args.run(&g).await,
                    Command::Completions(_) | Command::Serve(_) => unreachable!("handled above"),
                }
            })
        }
    }
}

/// A client bound to the chosen profile; for the `embedded` profile it owns the engine too.
pub struct Session {
    pub client: Client,
    pub profile: ResolvedProfile,
    pub embedded: Option<Embedded>,
}

impl GlobalArgs {
    pub fn json(&self) -> bool {
        self.output == Format::Json
    }

    pub fn load_config(&self) -> Result<Config> {
        Config::load(self.config.as_deref())
    }

    /// [`Self::connect`] within the command's `--timeout`, which may pass while another
    /// command's embedded engine holds the data directory.
    pub async fn connect_within(
        &self,
        execute: bool,
        timeout: Option<std::time::Duration>,
    ) -> Result<Session> {
        let Some(t) = timeout else {
            return self.connect(execute).await;
        };
        match tokio::time::timeout(t, self.connect(execute)).await {
            Ok(session) => session,
            Err(_) => Err(Failure::new(
                Exit::Unreachable,
                format!(
                    "--timeout reached after {} waiting for another command's embedded engine to end; nothing was sent",
                    crate::client::fmt_secs(t)
                ),
            )
            .into()),
        }
    }

    /// Resolves the profile and connects. `execute` matters only for the embedded engine:
    /// whether it should run work, or only answer.
    pub async fn connect(&self, execute: bool) -> Result<Session> {
        let config = self.load_config()?;
        let profile = config.resolve_profile(self.profile.as_deref(), self.url())?;
        let verbose = self.verbose > 0;
        let (client, embedded) = match &profile.target {
            Target::Url(url) => (
                self.client(
                    url,
                    profile.token.clone(),
                    &profile,
                    output::redact_url(url).into_owned(),
                )?,
                None,
            ),
            Target::Embedded => {
                if verbose {
                    output::log_to_stderr(self.no_color, "restack=debug");
                }
                let engine = Embedded::start(&config, execute, self.quiet).await?;
                let label = format!("the embedded engine ({})", engine.data_dir.display());
                let client = self.client(&engine.url, engine.token.clone(), &profile, label)?;
                (client, Some(engine))
            }
        };
        if verbose {
            let target = match &embedded {
                Some(e) => format!(
                    "embedded engine at {} (data dir {})",
                    e.url,
                    e.data_dir.display()
                ),
                None => output::redact_url(client.base()).into_owned(),
            };
            eprintln!("* profile {}: {target}", profile.name);
        }
        Ok(Session {
            client,
            profile,
            embedded,
        })
    }

    /// A client for `url`, named `label` in messages.
    pub fn client(
        &self,
        url: &str,
        token: Option<String>,
        profile: &ResolvedProfile,
        label: String,
    ) -> Result<Client> {
        let origin = Origin {
            label,
            profile: self.url().is_none().then(|| profile.name.clone()),
            again: self.again(),
            refused_hint: profile.no_token_because.clone(),
            embedded: matches!(profile.target, Target::Embedded),
        };
        Client::new(url, token, origin, self.verbose > 0)
    }

    /// `--url` (or `RESTACK_URL`); empty is unset, so that `RESTACK_URL=` can clear it.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref().filter(|u| !u.is_empty())
    }

    /// The start of a command line that reaches the same server with the same config, for
    /// hints: `restack -c ./ci.toml -p cloud`.
    pub fn again(&self) -> String {
        self.again_at(self.url())
    }

    /// [`Self::again`], but reaching the server at `url` (when there is one, over the profile's).
    pub fn again_at(&self, url: Option<&str>) -> String {
        let mut line = String::from("restack");
        if let Some(c) = &self.config {
            line.push_str(&output::flag_word(
                "-c",
                "--config",
                &c.display().to_string(),
            ));
        }
        if let Some(p) = &self.profile {
            line.push_str(&output::flag_word("-p", "--profile", p));
        }
        if let Some(u) = url {
            line.push_str(&output::flag_word("--url", "--url", &output::redact_url(u)));
        }
        line
    }
}

impl Session {
    /// Where the history says a run lives: the server's URL as given (credentials and all: the
    /// history is the user's own file, and `status` must reach the server again), or the
    /// embedded engine's description.
    pub fn recorded_at(&self) -> String {
        match self.embedded {
            Some(_) => self.label(),
            None => self.client.base().to_string(),
        }
    }

    /// What to call the server in messages: its URL, or the embedded engine's data directory.
    pub fn label(&self) -> String {
        self.client.origin.label.clone()
    }

    /// Runs `work`; with the embedded engine, Ctrl-C, SIGTERM or SIGHUP ends it early instead of
    /// killing the process, so that [`Self::finish`] stops the engine as `serve` stops: its
    /// running agents are stopped and their attempts put back in the queue, unspent, to resume
    /// the next time an engine opens the data directory. (Killed outright, the process would
    /// leave them `running`, and the next start would count them as interrupted attempts.)
    /// Without the embedded engine a signal ends the command as usual: the server keeps the
    /// run going.
    pub async fn interruptible<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let Some(engine) = &self.embedded else {
            return work.await;
        };
        // A closed terminal (SIGHUP) too: it would kill the process as surely as Ctrl-C.
        let signal = async {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate())?;
            let hup = hangup()?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r,
                _ = term.recv() => Ok(()),
                () = hup => Ok(()),
            }
        };
        tokio::select! {
            result = work => result,
            Ok(()) = signal => Err(Failure::new(
                Exit::Interrupted,
                format!(
                    "interrupted: the embedded engine stopped, and what it was running resumes the next time an engine opens {}",
                    engine.data_dir.display()
                ),
            )
            .with_hint("`restack serve`, or a command with --follow, opens it")
            .into()),
        }
    }

    /// Runs `f` and then stops the embedded engine, whatever `f` returned.
    pub async fn finish<T>(self, result: Result<T>) -> Result<T> {
        if let Some(e) = self.embedded {
            e.stop().await;
        }
        result
    }
}

/// Resolves at the first SIGHUP; never, when the process was started with SIGHUP ignored
/// (`nohup`, `trap '' HUP`): a handler would undo that, and a hangup would then stop what the
/// user meant to outlive the terminal. Registered when called, not when first polled.
pub(crate) fn hangup() -> std::io::Result<impl Future<Output = ()>> {
    // SAFETY: sigaction(2) with no new action only reads the current one into `old`, a
    // zeroed struct this function owns.
    let ignored = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGHUP, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    };
    let mut signal = match ignored {
        true => None,
        false => Some(tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::hangup(),
        )?),
    };
    Ok(async move {
        match &mut signal {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    })
}
