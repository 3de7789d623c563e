//! Blocks, their entries, equivocation evidence, and the node's status.

use super::*;

/// A block header.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeaderDto {
    /// Chain.
    pub chain: String,
    /// The epoch it was made in (its parent's epoch certifies it).
    pub epoch: u32,
    /// Height.
    pub height: u64,
    /// Block hash.
    pub hash: String,
    /// Parent hash.
    pub parent: String,
    /// Block time.
    pub timestamp_ms: u64,
    /// Events root.
    pub events_root: String,
    /// Entries.
    pub event_count: u32,
    /// State root.
    pub state_root: String,
    /// Whether certified.
    pub certified: bool,
}

impl HeaderDto {
    /// From a header.
    pub fn new(h: &Header, certified: bool) -> Self {
        let b = &h.body;
        HeaderDto {
            chain: b.chain.to_string(),
            epoch: b.epoch,
            height: b.height,
            hash: h.hash().to_string(),
            parent: b.parent.to_string(),
            timestamp_ms: b.timestamp.0,
            events_root: b.events_root.to_string(),
            event_count: b.event_count,
            state_root: b.state_root.to_string(),
            certified,
        }
    }
}

/// A block with its entries and certificate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BlockDto {
    /// Header.
    pub header: HeaderDto,
    /// Its entries, in block order.
    pub entries: Vec<EntryDto>,
    /// Witnesses that signed the certificate.
    pub certificate_witnesses: Vec<String>,
}

/// Node status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatusDto {
    /// Network id.
    pub network_id: String,
    /// Network name.
    pub network_name: String,
    /// This node's chain.
    pub chain: String,
    /// Head height (0 before the first block).
    pub head_height: u64,
    /// Head hash.
    pub head_hash: Option<String>,
    /// Highest certified height.
    pub certified_height: u64,
    /// Events waiting for a block.
    pub pending: u64,
    /// The newest epoch this node knows (0: genesis's configuration).
    pub epoch: u32,
    /// Members in that epoch.
    pub members: usize,
    /// Quorum.
    pub quorum: u32,
    /// Software version.
    pub version: String,
    /// Maintenance mode: writes answer 503 `MAINTENANCE`; reads and verification go on.
    pub maintenance: bool,
    /// Member nodes connected now (empty for a one-member network).
    pub peers: Vec<String>,
    /// Every merchant chain as this node holds it (replicating nodes only).
    pub chains: Vec<ChainStatusDto>,
}

/// One chain's replication state on this node.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChainStatusDto {
    /// The chain (member code).
    pub chain: String,
    /// Stored head height.
    pub height: u64,
    /// Every block up to here is certified.
    pub certified: u64,
    /// Equivocation evidence is held: the chain is frozen here.
    pub frozen: bool,
    /// How far the highest head a connected peer reported is ahead of ours.
    pub lag: u64,
}

/// Equivocation evidence: two headers signed by one chain's owner for one height.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvidenceDto {
    /// The chain it is about.
    pub chain: String,
    /// The height signed twice.
    pub height: u64,
    /// The two block hashes.
    pub blocks: Vec<String>,
    /// The evidence in canonical bytes (hex), verifiable offline with the genesis.
    pub canonical_hex: String,
    /// The epoch of the chain reset that superseded it: the chain resumed under a
    /// successor key and is no longer frozen; the evidence stays on record. Absent while
    /// it freezes the chain.
    pub superseded_in_epoch: Option<u32>,
}

impl From<&NodeStatus> for StatusDto {
    fn from(s: &NodeStatus) -> Self {
        StatusDto {
            network_id: s.network.to_string(),
            network_name: s.network_name.clone(),
            chain: s.chain.to_string(),
            head_height: s.head.map(|h| h.height).unwrap_or(0),
            head_hash: s.head.map(|h| h.hash.to_string()),
            certified_height: s.certified_height,
            pending: s.pending,
            epoch: s.epoch,
            members: s.members,
            quorum: s.quorum,
            version: env!("CARGO_PKG_VERSION").into(),
            maintenance: s.maintenance,
            peers: s
                .replication
                .as_ref()
                .map(|r| r.peers.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            chains: s
                .replication
                .as_ref()
                .map(|r| {
                    r.chains
                        .iter()
                        .map(|c| ChainStatusDto {
                            chain: c.chain.to_string(),
                            height: c.height,
                            certified: c.certified,
                            frozen: c.frozen,
                            lag: c.peer_height.saturating_sub(c.height),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// The consortium's configuration: the newest epoch and how every epoch began.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsortiumDto {
    /// Network id (the genesis hash; it never changes).
    pub network_id: String,
    /// The newest epoch this node knows.
    pub epoch: u32,
    /// On the admin's own node, the epoch the admin chain's newest block records,
    /// certified or not: a new change starts the one after it.
    pub recorded_epoch: Option<u32>,
    /// Its quorum.
    pub quorum: u32,
    /// The member owning the admin chain (none: the configuration is fixed).
    pub admin: Option<String>,
    /// Its members, by code.
    pub members: Vec<MemberDto>,
    /// Codes of members that left, never used again.
    pub retired: Vec<String>,
    /// Every configuration change, oldest first.
    pub history: Vec<EpochDto>,
}

/// A member as a configuration lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberDto {
    /// Member code.
    pub code: String,
    /// Registered name.
    pub name: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Key, hex.
    pub key: String,
    /// Node addresses.
    pub addresses: Vec<String>,
    /// Unified social credit code, when it buys inside the consortium.
    pub tax_id: Option<String>,
}

/// One configuration change: the certified admin block that holds it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EpochDto {
    /// Admin chain height of the block.
    pub height: u64,
    /// Its block time, ms.
    pub timestamp_ms: u64,
    /// The change, with the epoch it started.
    pub change: ConfigChangedDto,
}

impl ConsortiumDto {
    /// The newest configuration and the changes that led to it.
    pub fn new(
        network: fapiao_core::NetworkId,
        latest: &fapiao_core::Config,
        recorded_epoch: Option<u32>,
        history: &[fapiao_engine::EpochRecord],
    ) -> Self {
        ConsortiumDto {
            network_id: network.to_string(),
            epoch: latest.epoch(),
            recorded_epoch,
            quorum: latest.quorum(),
            admin: latest.admin().map(|a| a.to_string()),
            members: latest
                .members()
                .iter()
                .map(|m| MemberDto {
                    code: m.code.to_string(),
                    name: m.name.clone(),
                    roles: m.roles.iter().map(|r| r.name().to_string()).collect(),
                    key: m.key.to_hex(),
                    addresses: m.addresses.clone(),
                    tax_id: m.tax_id.clone(),
                })
                .collect(),
            retired: latest.retired().iter().map(ToString::to_string).collect(),
            history: history
                .iter()
                .map(|r| EpochDto {
                    height: r.height,
                    timestamp_ms: r.timestamp.0,
                    change: ConfigChangedDto::new(&r.change),
                })
                .collect(),
        }
    }
}

/// The admin chain's certified blocks, canonical: what a member joining imports
/// (`fapiao node join`) and what every proof bundle carries, checked against genesis.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConfigurationDto {
    /// How many blocks.
    pub blocks: usize,
    /// The canonical encoding of the list of blocks, hex (docs/FORMAT.md §12,
    /// `configuration`).
    pub configuration_hex: String,
}
