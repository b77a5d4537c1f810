//! The `embedded` profile: the engine runs inside this process on a loopback port, and the
//! client talks to it over HTTP like to any server, so both paths are the same code.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::engine::{DirInUse, Engine};
use crate::error::Failure;

pub struct Embedded {
    pub url: String,
    pub token: Option<String>,
    pub data_dir: PathBuf,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Embedded {
    pub async fn start(config: &Config, execute: bool) -> Result<Embedded> {
        let mut settings = config.engine_settings(None, None)?;
        // Work cut short when the command exits is requeued at once, not after a grace period.
        settings.shutdown_grace = Duration::ZERO;
        let data_dir = settings.data_dir.clone();
        let token = settings.token.clone();
        let engine = Engine::open(settings, execute).map_err(|e| {
            let failure = Failure::usage(format!("cannot start the embedded engine: {e:#}"));
            if e.chain().any(|c| c.is::<DirInUse>()) {
                failure.with_hint(
                    "another engine holds this data directory; talk to it with `-p local` (or --url), or set [serve] data_dir",
                )
            } else {
                failure.with_hint("the engine's settings are the config's [serve] section")
            }
        })?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(engine.serve(listener, async move {
            let _ = stopped.await;
        }));
        Ok(Embedded {
            url,
            token,
            data_dir,
            stop,
            task,
        })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: the embedded engine stopped with an error: {e:#}"),
            Err(e) => eprintln!("warning: the embedded engine stopped abnormally: {e}"),
        }
    }
}
