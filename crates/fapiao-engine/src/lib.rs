//! The merchant engine: what a node does with events between the API and the store.
//!
//! Admission (`admit`): decode, size limit, network id, chain, signatures (batched and
//! spread over all cores), author authorised for the chain and kind, dedupe by event id
//! and by business id (payment, refund, request, deposit ids), then one synced write of
//! the whole admission group to the pending table before anything is acknowledged.
//!
//! Production (a dedicated thread): group commit of pending events into blocks of at
//! most `block_events_max` events or every `block_interval_ms`, deterministic execution
//! (`fapiao-domain`), state root (`fapiao-store`'s tree), header signed by the member
//! key, self-attestation, one atomic synced block write.
//!
//! Architecture invariant: no HTTP, no libp2p; the API and the network call in. Time is
//! read here (the rim), never in the domain.

mod admission;
mod disk;
mod metrics;
mod producer;
mod proof;
mod queries;
mod reconcile;

pub use admission::{AdmitError, AdmitOutcome, AdmitStatus, BusinessIdKind};
pub use metrics::Metrics;
pub use producer::EXECUTION_FAILED;

/// The wall clock, in ms since the Unix epoch: the one place the node reads it (the
/// engine is the rim; the domain gets time as block time). A clock before 1970 reads 0.
pub fn wall_clock() -> fapiao_core::Timestamp {
    fapiao_core::Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    )
}
pub use proof::{AsOf, Factors, ProofError};
pub use queries::{
    EpochRecord, EventOutcome, EventStatus, FailureCursor, FailureRow, HistoryEntry, NodeStatus, PaymentView,
    FAILURE_ROWS_SCANNED_MAX, HISTORY_PAGE_MAX,
};
pub use reconcile::{
    business_day, business_ms_of_day, format_day, format_time, parse_day, QuotaMonthRow, RateRow, ReconRow,
    Reconciliation, RECON_LIST_MAX,
};

use fapiao_core::{Epochs, Genesis, MemberCode, NetworkId, SecretKey};
use fapiao_store::{Store, StoreError};
use std::sync::{Arc, Condvar, Mutex};

/// Limits and timing.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most events in one block.
    pub block_events_max: usize,
    /// Longest an admitted event waits before a block is cut, while the chain's
    /// certification keeps up (see `uncertified_blocks_max`).
    pub block_interval_ms: u64,
    /// Blocks of this chain that may wait for their certificates while the next one is
    /// cut early: with this many uncertified, the next block waits (up to
    /// `certify_wait_ms`) for a certificate or until it is full. Witnesses attest a block
    /// only once its parent is certified, so a chain certifies one block per round of
    /// attestations; blocks cut faster than that only queue, each paying the per-block
    /// costs on every member. Waiting grows the blocks instead (PROTOCOL.md, "Block
    /// size under load").
    pub uncertified_blocks_max: u64,
    /// Longest an admitted event waits for a block while the chain's certification is
    /// behind: with witnesses away, blocks are still cut, at this pace.
    pub certify_wait_ms: u64,
    /// Most admitted events waiting for a block; beyond it admission answers "busy".
    pub pending_max: usize,
    /// Largest encoded event accepted.
    pub event_bytes_max: usize,
    /// Most events in one submission.
    pub batch_events_max: usize,
    /// Most submissions queued for the admission writer.
    pub admission_queue_max: usize,
    /// Largest encoded block (header and entries). Input events fill at most half of it,
    /// leaving the rest for derived events; peers refuse gossip above this size.
    pub block_bytes_max: usize,
    /// Free disk the ledger's file system keeps in reserve: below it admission answers
    /// `STORAGE_FULL`, below half of it block production pauses, so RocksDB never runs
    /// out of space in the middle of a write that was asked of it.
    pub disk_reserve_bytes: u64,
    /// Hold block production from the start until [`Engine::release_production`]: a
    /// node with peers first learns from them how far its own chain goes, so that it
    /// never signs a block at a height they already hold (a restored backup).
    pub hold_production_at_start: bool,
    /// Added to the wall clock for this node's block timestamps. Zero in production: it
    /// exists so a drill or a test can move a chain's block time forward (a red-letter
    /// form's 72 hours) without waiting. Witnesses still refuse blocks more than their
    /// skew bound ahead of their own clocks, so on a network it only works within that.
    pub clock_offset_ms: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            block_events_max: 2000,
            block_interval_ms: 100,
            uncertified_blocks_max: 1,
            certify_wait_ms: 1_000,
            pending_max: 200_000,
            event_bytes_max: 64 * 1024,
            batch_events_max: 2000,
            admission_queue_max: 1024,
            block_bytes_max: 4 * 1024 * 1024,
            disk_reserve_bytes: 256 * 1024 * 1024,
            hold_production_at_start: false,
            clock_offset_ms: 0,
        }
    }
}

/// An engine failure that is not the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// This node's key is not a member of genesis that runs a node (a merchant or a
    /// witness).
    #[error("the node key {0} is not a merchant or a witness of this genesis: only they run nodes")]
    RunsNoNode(String),
    /// The engine is shutting down.
    #[error("the engine is stopping")]
    Stopped,
}

pub(crate) struct Shared {
    pub(crate) store: Arc<Store>,
    pub(crate) genesis: Arc<Genesis>,
    /// Every epoch known: loaded from the admin chain at start, replaced by replication
    /// as certified configuration changes arrive.
    pub(crate) epochs: std::sync::RwLock<Arc<Epochs>>,
    pub(crate) network: NetworkId,
    pub(crate) chain: MemberCode,
    pub(crate) produces: bool,
    pub(crate) key: SecretKey,
    pub(crate) config: EngineConfig,
    pub(crate) pending: Mutex<admission::PendingSet>,
    /// Signalled when events are admitted or the engine stops.
    pub(crate) wake: Condvar,
    pub(crate) metrics: Metrics,
    pub(crate) stopping: std::sync::atomic::AtomicBool,
    /// Called with every block this node produced, after it is durable.
    pub(crate) block_hook: Mutex<Option<BlockHook>>,
    pub(crate) replication: Mutex<Option<ReplicationStatus>>,
    /// Writes are refused while set (maintenance mode).
    pub(crate) maintenance: std::sync::atomic::AtomicBool,
    /// Free disk against the reserve.
    pub(crate) disk: disk::DiskGuard,
    /// Why block production is held, if it is.
    pub(crate) hold: Mutex<Option<ProductionHold>>,
}

impl Shared {
    pub(crate) fn epochs(&self) -> Arc<Epochs> {
        self.epochs.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Why block production is held (see [`Engine::hold_production`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductionHold {
    /// For the log, the status and the refusal.
    pub reason: String,
    /// Whether admission refuses writes meanwhile (`OWN_CHAIN_BEHIND`): when the hold
    /// will not end by itself, events must stay with their clients.
    pub refuse_writes: bool,
}

/// Replication's view, published by the node's replication loop for status queries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicationStatus {
    /// Member nodes connected now.
    pub peers: Vec<MemberCode>,
    /// Every merchant chain as this node holds it.
    pub chains: Vec<ChainReplication>,
}

/// One chain's replication state on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainReplication {
    /// The chain.
    pub chain: MemberCode,
    /// Stored head height.
    pub height: u64,
    /// Every block up to here is certified.
    pub certified: u64,
    /// Evidence of equivocation is held: the chain is frozen here.
    pub frozen: bool,
    /// The highest head height a connected peer reported.
    pub peer_height: u64,
}

/// Receives each block this node produces, after it is stored.
pub type BlockHook = Box<dyn Fn(&fapiao_core::Block) + Send>;

/// The engine handle; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    admit_tx: tokio::sync::mpsc::Sender<admission::Job>,
    threads: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>,
}

impl Engine {
    /// Starts the engine for the merchant whose member key is `key`: loads the durable
    /// pending events and starts the admission writer and block producer threads.
    // Long: the engine's start-up in order, each step using what the one before set up.
    pub fn start(
        store: Arc<Store>,
        genesis: Arc<Genesis>,
        key: SecretKey,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let (epochs, _, _) = fapiao_chain::disk::epochs(&*store, &genesis)?;
        let latest = epochs.latest();
        let member = latest
            .member_by_key(&key.public())
            .filter(|m| latest.runs_node(m.code))
            .ok_or_else(|| EngineError::RunsNoNode(key.public().to_hex()))?;
        let chain = member.code;
        // A witness that owns no chain (neither a merchant nor the admin) admits nothing
        // and produces nothing; its node validates, attests and serves the chains it holds.
        let produces = latest.chain_owner(chain).is_some();
        let pending = admission::PendingSet::load(&store)?;
        let store_path = store.path().to_path_buf();
        let disk_reserve = config.disk_reserve_bytes;
        let config_hold = config.hold_production_at_start.then(|| ProductionHold {
            reason: "waiting for a peer to say how far this node's own chain goes".into(),
            refuse_writes: false,
        });
        let (admit_tx, admit_rx) = tokio::sync::mpsc::channel(config.admission_queue_max);
        let shared = Arc::new(Shared {
            network: genesis.network_id(),
            chain,
            produces,
            store,
            genesis,
            epochs: std::sync::RwLock::new(Arc::new(epochs)),
            key,
            config,
            pending: Mutex::new(pending),
            wake: Condvar::new(),
            metrics: Metrics::default(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            block_hook: Mutex::new(None),
            replication: Mutex::new(None),
            maintenance: std::sync::atomic::AtomicBool::new(false),
            disk: disk::DiskGuard::new(store_path, disk_reserve),
            hold: Mutex::new(config_hold),
        });
        if shared.hold.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            shared
                .metrics
                .production_held
                .store(1, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(h) = shared.store.head(chain)? {
            shared
                .metrics
                .head_height
                .store(h.height, std::sync::atomic::Ordering::Relaxed);
        }
        let certs = shared
            .store
            .last::<fapiao_store::tables::Certs>(&fapiao_store::tables::chain_prefix(chain))?;
        if let Some((_, c)) = certs {
            shared
                .metrics
                .certified_height
                .store(c.height, std::sync::atomic::Ordering::Relaxed);
        }
        shared.metrics.pending.store(
            shared.pending.lock().map(|p| p.len()).unwrap_or(0) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let s1 = shared.clone();
        let writer = std::thread::Builder::new()
            .name("admission".into())
            .spawn(move || admission::writer_loop(s1, admit_rx))
            .map_err(|_| EngineError::Stopped)?;
        let mut threads = vec![writer];
        if produces {
            let s2 = shared.clone();
            let producer = std::thread::Builder::new()
                .name("producer".into())
                .spawn(move || producer::producer_loop(s2))
                .map_err(|_| EngineError::Stopped)?;
            threads.push(producer);
        }
        Ok(Engine {
            shared,
            admit_tx,
            threads: Arc::new(Mutex::new(threads)),
        })
    }

    /// This node's chain (for a witness that is not a merchant, its member code, which
    /// names no chain).
    pub fn chain(&self) -> MemberCode {
        self.shared.chain
    }

    /// The network id.
    pub fn network(&self) -> NetworkId {
        self.shared.network
    }

    /// The genesis.
    pub fn genesis(&self) -> &Genesis {
        &self.shared.genesis
    }

    /// Every epoch known (a snapshot).
    pub fn epochs(&self) -> Arc<Epochs> {
        self.shared.epochs()
    }

    /// Replication learned a new epoch: blocks are made, and events authorised, in it.
    pub fn set_epochs(&self, epochs: Epochs) {
        *self.shared.epochs.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(epochs);
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// A shared handle on the store (for replication, which writes other chains).
    pub fn store_handle(&self) -> Arc<Store> {
        self.shared.store.clone()
    }

    /// The limits.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// Metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Hands every block produced from now on to `hook` (replication gossips it). The
    /// hook runs on the producer thread: it may block, which slows production down.
    pub fn set_block_hook(&self, hook: BlockHook) {
        *self.shared.block_hook.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// Turns maintenance mode on or off: while on, admission refuses every event with
    /// `MAINTENANCE`; events admitted before still go into blocks, and reads go on.
    pub fn set_maintenance(&self, on: bool) {
        let was = self.shared.maintenance.swap(on, std::sync::atomic::Ordering::SeqCst);
        if was != on {
            tracing::warn!(on, "maintenance mode changed");
        }
    }

    /// Free disk below the reserve: `Some((free, reserve))` while writes are refused.
    pub fn storage_full(&self) -> Option<(u64, u64)> {
        self.shared.disk.full(&self.shared.metrics)
    }

    /// Holds block production (and, with `refuse_writes`, admission) until
    /// [`Engine::release_production`]. Events already admitted stay pending.
    pub fn hold_production(&self, reason: String, refuse_writes: bool) {
        tracing::warn!(%reason, refuse_writes, "block production held");
        self.shared
            .metrics
            .production_held
            .store(1, std::sync::atomic::Ordering::Relaxed);
        *self.shared.hold.lock().unwrap_or_else(|p| p.into_inner()) = Some(ProductionHold { reason, refuse_writes });
    }

    /// Records that this node's own chain is certified up to `height` (a quorum's
    /// certificate, learned by replication). A block waiting for its chain's
    /// certification to catch up (`EngineConfig::uncertified_blocks_max`) is cut now.
    pub fn own_certified(&self, height: u64) {
        self.shared
            .metrics
            .certified_height
            .fetch_max(height, std::sync::atomic::Ordering::Relaxed);
        self.shared.metrics.certification.certified(height);
        self.shared.wake.notify_all();
    }

    /// Ends a hold: production resumes with the events that waited.
    pub fn release_production(&self) {
        let was = self.shared.hold.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = was {
            tracing::info!(reason = %h.reason, "block production released");
        }
        self.shared
            .metrics
            .production_held
            .store(0, std::sync::atomic::Ordering::Relaxed);
        self.shared.wake.notify_all();
    }

    /// Stores a block of this node's own chain that its peers hold and this ledger lost
    /// (an older backup was restored, or the ledger started empty), with `state` from
    /// re-executing it on this ledger, and our vote. Its events leave the pending set in
    /// the same write: they are recorded now and must not be produced again. Called by
    /// replication only while production is held (so this is the only writer of the
    /// chain) and the block extends the stored head (the store asserts it).
    pub fn adopt_own_block(
        &self,
        block: &fapiao_core::Block,
        state: &fapiao_store::PreparedState,
    ) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        debug_assert!(self.production_hold().is_some(), "adopting a block while producing");
        let mut pending = self.shared.pending.lock().unwrap_or_else(|p| p.into_inner());
        let seqs: Vec<u64> = block
            .entries
            .iter()
            .filter_map(|e| pending.ids.get(&e.id()).copied())
            .collect();
        self.shared.store.commit_block(&fapiao_store::BlockCommit {
            block,
            state,
            pending_done: &seqs,
            rejected: &[],
            vote: Some(block.header.hash()),
            certificate: None,
        })?;
        for s in &seqs {
            pending.remove(*s);
        }
        if pending.by_seq.is_empty() {
            pending.oldest = None;
        }
        let m = &self.shared.metrics;
        m.pending.store(pending.len() as u64, Ordering::Relaxed);
        m.head_height.fetch_max(block.header.body.height, Ordering::Relaxed);
        tracing::info!(
            height = block.header.body.height,
            events_were_pending = seqs.len(),
            "own block recovered from a peer"
        );
        Ok(())
    }

    /// Why production is held, if it is.
    pub fn production_hold(&self) -> Option<ProductionHold> {
        self.shared.hold.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the node is in maintenance mode.
    pub fn maintenance(&self) -> bool {
        self.shared.maintenance.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Publishes replication's current view (peers, heads, lag).
    pub fn set_replication(&self, status: ReplicationStatus) {
        *self.shared.replication.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
    }

    /// Replication's last published view (none for a node without peers).
    pub fn replication(&self) -> Option<ReplicationStatus> {
        self.shared
            .replication
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops the threads after the block in progress; pending events stay durable.
    pub fn stop(&self) {
        self.shared.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.wake.notify_all();
        self.stop_writer();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        // A clean stop leaves no log to replay at the next start.
        if let Err(e) = self.shared.store.flush() {
            tracing::warn!(error = %e, "flushing the store at stop failed; the next start replays its log");
        }
    }

    /// Whether a critical thread has died (the node should exit).
    pub fn failed(&self) -> bool {
        self.shared
            .metrics
            .thread_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    }
}
