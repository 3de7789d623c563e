//! Running a node: open the store, start the engine and the HTTP server, stop cleanly.

use crate::config::Loaded;
use crate::files;
use anyhow::{Context, Result};
use fapiao_api::ApiConfig;
use fapiao_engine::Engine;
use fapiao_store::{Store, StoreOptions};
use std::sync::Arc;

/// How often the maintenance flag file is looked at.
const MAINTENANCE_POLL_MS: u64 = 250;

/// A started node.
pub(crate) struct Running {
    pub(crate) engine: Engine,
    replication_failed: Option<Arc<std::sync::atomic::AtomicBool>>,
    pub(crate) addr: std::net::SocketAddr,
    listener: tokio::net::TcpListener,
    api: ApiConfig,
}

/// Opens the store and starts the engine; binds the HTTP listener.
// Long: a node's start-up in order (files, store, engine, transport, replication, API), each step using what the
// one before set up.
pub(crate) async fn start(cfg: &Loaded) -> Result<Running> {
    let genesis = Arc::new(files::read_genesis(&cfg.path(&cfg.config.genesis))?);
    let key = files::read_key_file(&cfg.path(&cfg.config.member_key))?;
    let ledger = cfg.ledger_dir();
    std::fs::create_dir_all(&ledger).with_context(|| format!("creating {}", ledger.display()))?;
    let store = Store::open(
        &ledger,
        &StoreOptions {
            state_history_days: cfg.config.engine.state_history_days,
            nice_compactions: true,
            ..StoreOptions::default()
        },
    )?;
    // The newest configuration this ledger knows (the admin chain's certified changes).
    let (epochs, _, _) = fapiao_chain::disk::epochs(&store, &genesis)?;
    let latest = epochs.latest();
    // Merchants, the admin and witnesses run nodes; with no other, there is nobody to
    // replicate with.
    let me = latest.member_by_key(&key.public()).map(|m| m.code).with_context(|| {
        format!(
            "this node's key is not a member of epoch {}, the newest this ledger knows. A member added, or a key \
                 rotated, after that epoch first imports the newer configuration: `fapiao consortium export` on any \
                 member's node, then `fapiao node join` here (OPERATIONS.md, \"Joining\")",
            latest.epoch()
        )
    })?;
    // What certified chain resets set aside leaves the chains before anything reads them.
    crate::reset::apply(&store, &genesis, &epochs)?;
    let resubmit = crate::reset::to_resubmit(&store, me)?;
    let replicates = latest.replicates(me);
    // With peers, production waits until one of them has said how far this node's own
    // chain goes (replicate.rs): a restored ledger must not sign heights they hold.
    let engine_config = fapiao_engine::EngineConfig {
        hold_production_at_start: replicates && latest.chain_owner(me).is_some(),
        ..cfg.engine_config()
    };
    let engine = Engine::start(Arc::new(store), genesis.clone(), key.clone(), engine_config)?;
    if let Err(e) = crate::reset::resubmit(&engine, resubmit).await {
        // The events stay on record with their blocks, and their clients' outboxes hold
        // them until certified: nothing is lost, only later.
        tracing::warn!(error = %e, "the events of set-aside blocks could not be submitted again now");
    }
    let replication_failed = if replicates {
        let p2p = cfg
            .config
            .p2p
            .as_ref()
            .context("genesis has other members that run nodes: node.toml needs a [p2p] section with `listen`")?;
        let mut net_config = fapiao_net::NetConfig::new(vec![p2p.listen.clone()], engine.config().block_bytes_max);
        net_config.ban_ms = p2p.ban_ms.unwrap_or(net_config.ban_ms);
        let net = fapiao_net::start(net_config, &genesis, engine.epochs().latest(), engine.chain(), &key)?;
        tracing::info!(peer_id = %net.peer_id, listen = %p2p.listen, "peer transport started");
        Some(crate::replicate::start(&engine, key, net)?)
    } else {
        None
    };
    // Maintenance mode follows a flag file, so an operator on the host can switch it
    // with `fapiao node maintenance on|off` without any network credential.
    let flag = cfg.maintenance_flag();
    engine.set_maintenance(flag.exists());
    let watched = engine.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(MAINTENANCE_POLL_MS)).await;
            watched.set_maintenance(flag.exists());
        }
    });
    // Likewise `fapiao backup` on a running node leaves a request file, answered by a
    // thread of its own (a checkpoint copies every file).
    let requests = cfg.backup_requests_dir();
    std::fs::create_dir_all(&requests).with_context(|| format!("creating {}", requests.display()))?;
    let store = engine.store_handle();
    std::thread::Builder::new()
        .name("backup-requests".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(MAINTENANCE_POLL_MS));
            crate::audit::answer_backup_requests(&store, &requests);
        })
        .context("starting the backup-request thread")?;
    let listener = tokio::net::TcpListener::bind(&cfg.config.http_listen)
        .await
        .with_context(|| format!("listening on {}", cfg.config.http_listen))?;
    let addr = listener.local_addr()?;
    let api = ApiConfig {
        read_token: cfg.read_token()?,
        body_bytes_max: cfg.config.api.body_bytes_max,
        page_max: cfg.config.api.page_max,
        verify_checks_per_day: cfg.config.api.verify_checks_per_day,
    };
    Ok(Running {
        engine,
        replication_failed,
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
        let replication_failed = self.replication_failed.clone();
        let failed = async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                let replication_dead = replication_failed
                    .as_ref()
                    .is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst));
                if watchdog_engine.failed() || replication_dead {
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
        axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server failed")?;
        let died = engine.failed()
            || self
                .replication_failed
                .as_ref()
                .is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst));
        tokio::task::spawn_blocking(move || engine.stop()).await?;
        if died {
            anyhow::bail!("the node stopped because a critical thread died; see the log above");
        }
        Ok(())
    }
}
