//! The embedded engine: the Restack API served from a durable SQLite store, executing built-in
//! agents, command agents and checkpointed workflows.
//!
//! Bind outside, serve inside: [`Engine::open`] takes the data directory (and its lock), the
//! caller binds the listener, and [`Engine::serve`] runs until the shutdown future resolves.
//! Tests bind `127.0.0.1:0`; the CLI's `embedded` profile does the same in-process.

mod backlog;
mod catalog;
pub mod error;
pub mod executor;
pub mod http;
mod lock;
pub mod notify;
mod process;
pub mod store;
mod timers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::EngineSettings;
pub use backlog::WORKFLOWS_IN_MEMORY;
use catalog::{AgentImpl, Catalog};
use executor::Executor;
use lock::DirLock;
pub use lock::{DirInUse, Holder};
use notify::Notifier;
use store::Store;

/// The least time open requests get to finish at a stop, even when agents get no grace.
const DRAIN_AT_LEAST: Duration = Duration::from_secs(1);

pub use http::router;

/// Everything a handler may touch. Axum clones the state for every request (and again for each
/// middleware), so it is one `Arc`: one atomic increment, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Store,
    pub catalog: Arc<Catalog>,
    pub executor: Executor,
    pub notifier: Arc<Notifier>,
    pub token: Option<Arc<str>>,
    /// Fired at shutdown so long-polls answer at once instead of holding the stop.
    pub stopping: CancellationToken,
    pub max_body_bytes: usize,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Engine {
    pub state: AppState,
    settings: EngineSettings,
    lock: DirLock,
}

impl Engine {
    /// Locks the data directory, opens and migrates the database, compiles the catalog.
    /// `execute = false` serves the API without running anything (read-only embedded use).
    pub fn open(settings: EngineSettings, execute: bool) -> Result<Engine> {
        let lock = DirLock::acquire(&settings.data_dir)?;
        let catalog = Arc::new(Catalog::from_settings(&settings)?);
        let notifier = Arc::new(Notifier::default());
        let store = Store::open(&settings.data_dir, settings.sync_full, notifier.clone())?;
        let executor = Executor::new(
            store.clone(),
            catalog.clone(),
            settings.max_concurrency,
            settings.workflows_in_memory,
            execute,
        );
        Ok(Engine {
            state: AppState(Arc::new(Shared {
                store,
                catalog,
                executor,
                notifier,
                token: settings.token.as_deref().map(Arc::from),
                stopping: CancellationToken::new(),
                max_body_bytes: settings.max_body_bytes,
            })),
            settings,
            lock,
        })
    }

    /// Says in the directory's lock what holds it (`serve` and its URL, or an embedded
    /// engine), so that another engine's error can say how to reach this one.
    pub fn describe_holder(&mut self, holder: &Holder) {
        if let Err(e) = self.lock.describe(holder) {
            tracing::warn!("cannot write engine.lock: {e}");
        }
    }

    pub fn router(&self) -> axum::Router {
        router(self.state.clone())
    }

    /// Resumes unfinished runs, serves until `shutdown` resolves, then stops gracefully: no new
    /// requests, running agents get the grace period, everything else resumes at the next start.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let addr = listener.local_addr()?;
        check_exposure(addr, self.state.token.is_some())?;
        let (resumed, failed) = self.state.executor.recover().await?;
        self.banner(addr, resumed, failed);
        let stopping = self.state.stopping.clone();
        let grace = self.settings.shutdown_grace;
        let server = http::listen::serve(listener, self.router(), async move {
            shutdown.await;
            stopping.cancel();
        });
        // Once the stop begins, the HTTP side drains while the agents get their grace period,
        // side by side; a request still open past the grace period (a client that never
        // finishes sending) is no longer waited for: it does not hold the stop.
        let stopping = &self.state.stopping;
        let http = async {
            tokio::select! {
                () = server => {}
                _ = async {
                    stopping.cancelled().await;
                    tokio::time::sleep(grace.max(DRAIN_AT_LEAST)).await;
                } => {
                    tracing::warn!("requests still open after the grace period; not waiting for them");
                }
            };
            stopping.cancel();
        };
        let work = async {
            stopping.cancelled().await;
            tracing::info!(
                "stopping: no new requests; running agents get {}",
                humantime::format_duration(grace)
            );
            self.state.executor.shutdown(grace).await;
        };
        tokio::join!(http, work);
        self.state.store.close();
        tracing::info!("stopped");
        Ok(())
    }

    /// Stops without serving (for callers that drove the router directly).
    pub async fn close(self, grace: Duration) {
        self.state.stopping.cancel();
        self.state.executor.shutdown(grace).await;
        self.state.store.close();
    }

    fn banner(&self, addr: SocketAddr, resumed: usize, failed: usize) {
        let mut agents: Vec<&String> = self.state.catalog.agents.keys().collect();
        agents.sort();
        let mut workflows: Vec<&String> = self.state.catalog.workflows.keys().collect();
        workflows.sort();
        let list = |v: Vec<&String>| {
            if v.is_empty() {
                "(none)".to_string()
            } else {
                v.into_iter().cloned().collect::<Vec<_>>().join(", ")
            }
        };
        tracing::info!(
            "restack engine listening on http://{addr}; database {}; auth {}",
            self.state.store.path().display(),
            if self.state.token.is_some() {
                "on (bearer token)"
            } else {
                "off"
            }
        );
        // In name order, after the list: what is missing reads as a note on it.
        let missing: Vec<(String, String)> = agents
            .iter()
            .filter_map(|name| match &self.state.catalog.agents[*name].imp {
                AgentImpl::Command(spec) => Some(((*name).clone(), spec.missing_program()?)),
                _ => None,
            })
            .collect();
        tracing::info!("agents: {}; workflows: {}", list(agents), list(workflows));
        for (name, why) in missing {
            tracing::warn!("agent `{name}`: {why}; its runs fail until it is there");
        }
        if resumed + failed > 0 {
            tracing::info!(
                "recovered {resumed} unfinished runs; failed {failed} that could not go on"
            );
        }
    }
}

/// Without a token the API is open to anyone who can connect: allow that only on loopback.
pub fn check_exposure(addr: SocketAddr, has_token: bool) -> Result<()> {
    if !addr.ip().is_loopback() && !has_token {
        bail!(
            "refusing to listen on {addr} without a token: set RESTACK_API_BEARER_TOKEN (or the variable [serve] token_env names), or listen on 127.0.0.1"
        );
    }
    Ok(())
}
