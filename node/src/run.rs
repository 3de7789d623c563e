//! Running a node: open the store, start the engine and the HTTP server, stop cleanly.

use crate::config::Loaded;
use crate::files;
use anyhow::{Context, Result};
use fapiao_api::ApiConfig;
use fapiao_engine::Engine;
use fapiao_store::{Store, StoreOptions};
use std::sync::Arc;

/// A started node.
pub(crate) struct Running {
    pub(crate) engine: Engine,
    pub(crate) addr: std::net::SocketAddr,
    listener: tokio::net::TcpListener,
    api: ApiConfig,
}

/// Opens the store and starts the engine; binds the HTTP listener.
pub(crate) async fn start(cfg: &Loaded) -> Result<Running> {
    let genesis = Arc::new(files::read_genesis(&cfg.path(&cfg.config.genesis))?);
    let key = files::read_key_file(&cfg.path(&cfg.config.member_key))?;
    let ledger = cfg.ledger_dir();
    std::fs::create_dir_all(&ledger).with_context(|| format!("creating {}", ledger.display()))?;
    let store = Store::open(&ledger, &StoreOptions::default())?;
    let engine = Engine::start(Arc::new(store), genesis, key, cfg.engine_config())?;
    let listener = tokio::net::TcpListener::bind(&cfg.config.http_listen)
        .await
        .with_context(|| format!("listening on {}", cfg.config.http_listen))?;
    let addr = listener.local_addr()?;
    let api = ApiConfig {
        read_token: cfg.read_token()?,
        body_bytes_max: cfg.config.api.body_bytes_max,
        page_max: cfg.config.api.page_max,
    };
    Ok(Running {
        engine,
        addr,
        listener,
        api,
    })
}

impl Running {
    /// Serves until Ctrl-C / SIGTERM, or until a critical engine thread dies.
    pub(crate) async fn serve(self) -> Result<()> {
        let engine = self.engine.clone();
        let app = fapiao_api::router(self.engine.clone(), self.api);
        let watchdog_engine = engine.clone();
        let failed = async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                if watchdog_engine.failed() {
                    return;
                }
            }
        };
        let shutdown = async move {
            let ctrl_c = tokio::signal::ctrl_c();
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = ctrl_c => tracing::info!("interrupted; stopping"),
                _ = term => tracing::info!("terminated; stopping"),
                _ = failed => tracing::error!("a critical engine thread died; stopping"),
            }
        };
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .context("HTTP server failed")?;
        let died = engine.failed();
        tokio::task::spawn_blocking(move || engine.stop()).await?;
        if died {
            anyhow::bail!("the node stopped because a critical thread died; see the log above");
        }
        Ok(())
    }
}
