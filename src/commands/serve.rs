//! `restack serve`: the embedded engine as a server, until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use tokio::net::TcpListener;

use crate::cli::GlobalArgs;
use crate::engine::{Engine, Holder, check_exposure};
use crate::error::{Exit, Failure};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: [serve] listen, else 127.0.0.1:6233]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Where the database lives [default: [serve] data_dir, else <data dir>/restack]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl ServeArgs {
    pub async fn run(self, g: &GlobalArgs) -> Result<Exit> {
        let default_level = match (g.quiet, g.verbose) {
            (true, _) => "warn",
            (false, 0) => "info",
            (false, _) => "debug",
        };
        let filter =
            std::env::var("RUST_LOG").unwrap_or_else(|_| format!("restack={default_level},warn"));
        crate::output::log_to_stderr(g.no_color, &filter);

        let config = g.load_config()?;
        let settings = config.engine_settings(self.listen.as_deref(), self.data_dir.as_deref())?;
        let addr: SocketAddr = tokio::net::lookup_host(&settings.listen)
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                Failure::usage(format!(
                    "cannot resolve listen address {:?}; use HOST:PORT",
                    settings.listen
                ))
            })?;
        check_exposure(addr, settings.token.is_some())
            .map_err(|e| Failure::usage(e.to_string()))?;
        let mut engine =
            Engine::open(settings, true).map_err(|e| Failure::usage(format!("{e:#}")))?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Failure::usage(format!("cannot listen on {addr}: {e}")))?;
        let bound = listener.local_addr()?;
        let host = match bound.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        engine.describe_holder(&Holder::Serve(format!("http://{host}:{}", bound.port())));
        engine
            .serve(listener, shutdown_signal()?)
            .await
            .context("the engine stopped")?;
        Ok(Exit::Ok)
    }
}

fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    // Registered now, before the engine listens: a signal that comes the moment it has
    // started still stops it gracefully instead of killing it.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // A closed terminal stops the engine gracefully too, rather than killing it mid-attempt
    // (unless started under `nohup`).
    let hup = super::hangup()?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            () = hup => {}
        }
        tracing::info!("signal received");
    })
}
