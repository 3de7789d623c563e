//! The node's configuration file and the client profile.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `node.toml`. Relative paths are relative to the file's directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeConfig {
    /// Where the ledger database lives.
    pub(crate) data_dir: PathBuf,
    /// The consortium genesis.
    pub(crate) genesis: PathBuf,
    /// This member's key file.
    pub(crate) member_key: PathBuf,
    /// HTTP listen address.
    pub(crate) http_listen: String,
    /// File holding the bearer token for reads.
    pub(crate) read_token_file: PathBuf,
    /// The peer-to-peer transport; required when genesis has more than one member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) p2p: Option<P2pSection>,
    #[serde(default)]
    pub(crate) engine: EngineSection,
    #[serde(default)]
    pub(crate) api: ApiSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct P2pSection {
    /// Multiaddr to listen on, e.g. `/ip4/127.0.0.1/tcp/7001`.
    pub(crate) listen: String,
    /// How long a peer that sent invalid data stays banned (default 60 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ban_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct EngineSection {
    pub(crate) block_events_max: usize,
    pub(crate) block_interval_ms: u64,
    /// This chain's blocks awaiting certificates before the next one waits for a
    /// certificate (PROTOCOL.md, "Block size under load").
    pub(crate) uncertified_blocks_max: u64,
    /// Longest an admitted event waits for a block while that is so.
    pub(crate) certify_wait_ms: u64,
    pub(crate) pending_max: usize,
    pub(crate) batch_events_max: usize,
    /// Free disk kept in reserve, MiB: below it writes answer 503 STORAGE_FULL, below
    /// half of it block production pauses (see OPERATIONS.md, storage full).
    pub(crate) disk_reserve_mb: u64,
    /// Moves this node's block clock forward by this many ms (drills and tests only; see
    /// OPERATIONS.md "Configuration").
    pub(crate) clock_offset_ms: u64,
    /// Days of block time each chain's state versions are kept, so a status can be
    /// proven as of any height in them (besides each chain's last 256 blocks; default 45).
    pub(crate) state_history_days: u64,
}

impl Default for EngineSection {
    fn default() -> Self {
        let d = fapiao_engine::EngineConfig::default();
        EngineSection {
            block_events_max: d.block_events_max,
            block_interval_ms: d.block_interval_ms,
            uncertified_blocks_max: d.uncertified_blocks_max,
            certify_wait_ms: d.certify_wait_ms,
            pending_max: d.pending_max,
            batch_events_max: d.batch_events_max,
            disk_reserve_mb: d.disk_reserve_bytes / (1024 * 1024),
            clock_offset_ms: 0,
            state_history_days: fapiao_store::STATE_HISTORY_DAYS,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ApiSection {
    pub(crate) body_bytes_max: usize,
    pub(crate) page_max: usize,
    /// Times one invoice may be verified per day (UTC+8) on this node (default 5).
    pub(crate) verify_checks_per_day: u32,
}

impl Default for ApiSection {
    fn default() -> Self {
        let d = fapiao_api::ApiConfig::default();
        ApiSection {
            body_bytes_max: d.body_bytes_max,
            page_max: d.page_max,
            verify_checks_per_day: d.verify_checks_per_day,
        }
    }
}

/// A loaded config with its paths resolved.
pub(crate) struct Loaded {
    pub(crate) config: NodeConfig,
    pub(crate) dir: PathBuf,
}

impl Loaded {
    pub(crate) fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    pub(crate) fn ledger_dir(&self) -> PathBuf {
        self.path(&self.config.data_dir).join("ledger")
    }

    /// While this file exists the node is in maintenance mode (`fapiao node maintenance`).
    pub(crate) fn maintenance_flag(&self) -> PathBuf {
        self.path(&self.config.data_dir).join("MAINTENANCE")
    }

    /// Where `fapiao backup` leaves requests for a running node, and reads its answers.
    pub(crate) fn backup_requests_dir(&self) -> PathBuf {
        self.path(&self.config.data_dir).join("backup-requests")
    }

    pub(crate) fn read_token(&self) -> Result<String> {
        let p = self.path(&self.config.read_token_file);
        let t = std::fs::read_to_string(&p).with_context(|| format!("reading the read token {}", p.display()))?;
        let t = t.trim().to_string();
        if t.len() < 16 {
            bail!("the read token in {} is shorter than 16 characters", p.display());
        }
        Ok(t)
    }

    pub(crate) fn engine_config(&self) -> fapiao_engine::EngineConfig {
        let e = &self.config.engine;
        fapiao_engine::EngineConfig {
            block_events_max: e.block_events_max.clamp(1, 100_000),
            block_interval_ms: e.block_interval_ms.clamp(1, 60_000),
            uncertified_blocks_max: e.uncertified_blocks_max.max(1),
            certify_wait_ms: e.certify_wait_ms.clamp(1, 60_000),
            pending_max: e.pending_max.max(1),
            batch_events_max: e.batch_events_max.clamp(1, 100_000),
            disk_reserve_bytes: e.disk_reserve_mb.saturating_mul(1024 * 1024),
            clock_offset_ms: e.clock_offset_ms,
            ..fapiao_engine::EngineConfig::default()
        }
    }
}

pub(crate) fn load(path: &Path) -> Result<Loaded> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
    let config: NodeConfig = toml::from_str(&text).with_context(|| format!("in config {}", path.display()))?;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(Loaded { config, dir })
}

/// `client.toml`: how the CLI reaches and signs for a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientProfile {
    /// `http://127.0.0.1:PORT`.
    pub(crate) node_url: String,
    /// The read token.
    pub(crate) read_token: Option<String>,
    /// The client's signing key file (a POS or back-office key).
    pub(crate) key: PathBuf,
    /// The chain owner's member key file, for owner-only events (key management).
    pub(crate) member_key: Option<PathBuf>,
    /// The operator's key file, if this profile may deposit fees and set policy.
    pub(crate) operator_key: Option<PathBuf>,
    /// A verifier member's key file, if this profile may claim invoices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) verifier_key: Option<PathBuf>,
    /// A buyer member's key file (a member whose tax id is on the invoices it buys), if
    /// this profile may book invoices and answer red-letter forms as their buyer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) buyer_key: Option<PathBuf>,
    /// A directory for the durable outbox: every signed event is written there before
    /// it is sent, and waits there while the node is unreachable or in maintenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) outbox: Option<PathBuf>,
}

pub(crate) fn load_profile(path: &Path) -> Result<(ClientProfile, PathBuf)> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading client profile {} (start `fapiao dev` first, or pass --client FILE)",
            path.display()
        )
    })?;
    let p: ClientProfile = toml::from_str(&text).with_context(|| format!("in client profile {}", path.display()))?;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok((p, dir))
}
