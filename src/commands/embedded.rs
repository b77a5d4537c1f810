//! The `embedded` profile: the engine runs inside this process on a loopback port, and the
//! client talks to it over HTTP like to any server, so both paths are the same code.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::{Config, EngineSettings};
use crate::engine::{DirInUse, Engine, Holder};
use crate::error::Failure;

pub struct Embedded {
    pub url: String,
    pub token: Option<String>,
    pub data_dir: PathBuf,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Embedded {
    pub async fn start(config: &Config, execute: bool, quiet: bool) -> Result<Embedded> {
        let mut settings = config.engine_settings(None, None)?;
        // Work cut short when the command exits is requeued at once, not after a grace period.
        settings.shutdown_grace = Duration::ZERO;
        let data_dir = settings.data_dir.clone();
        let token = settings.token.clone();
        let mut engine = open_or_wait(&settings, execute, quiet).await.map_err(|e| {
            let failure = Failure::usage(format!("cannot start the embedded engine: {e:#}"));
            match e.chain().find_map(|c| c.downcast_ref::<DirInUse>()) {
                Some(DirInUse {
                    holder: Holder::Serve(url),
                    ..
                }) => failure.with_hint(format!(
                    "`restack serve` holds this data directory: talk to it with --url {url}, or set [serve] data_dir"
                )),
                Some(_) => failure.with_hint(
                    "another engine holds this data directory; talk to it with --url (or a profile with its url), or set [serve] data_dir",
                ),
                None => failure.with_hint("the engine's settings are the config's [serve] section"),
            }
        })?;
        engine.describe_holder(&Holder::Embedded);
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

/// Opens the engine; while another command's embedded engine holds the directory, waits for
/// that command to end (commands in parallel, `xargs -P` say, take turns), as cargo waits for
/// its lock. A `serve`, which does not end on its own, is not waited for.
async fn open_or_wait(settings: &EngineSettings, execute: bool, quiet: bool) -> Result<Engine> {
    let mut said = quiet;
    // A holder that has not said what it is yet (it writes that just after taking the lock)
    // gets a moment to say it; each new holder gets its own moment.
    let mut undescribed: Option<(Option<u32>, std::time::Instant)> = None;
    loop {
        let opened = Engine::open(settings.clone(), execute);
        let holder = opened.as_ref().err().and_then(|e| {
            e.chain()
                .find_map(|c| c.downcast_ref::<DirInUse>())
                .map(|d| (d.holder.clone(), d.pid))
        });
        let pid = holder.as_ref().and_then(|(_, pid)| *pid);
        let patient = match undescribed {
            Some((seen, since)) if seen == pid => since.elapsed() < Duration::from_secs(2),
            _ => {
                undescribed = Some((pid, std::time::Instant::now()));
                true
            }
        };
        match (opened, holder.map(|(h, _)| h)) {
            (Err(_), Some(Holder::Unknown)) if patient => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (Err(e), Some(Holder::Embedded)) => {
                if !said {
                    eprintln!(
                        "note: {e:#}, the embedded engine of another command: waiting for it to end"
                    );
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (opened, _) => return opened,
        }
    }
}
