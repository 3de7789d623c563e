//! The RocksDB store: typed reads, atomic block commits, durable pending events.

use crate::pages::{self, Page, PageVersion};
use crate::tables::{self, *};
use crate::StoreError;
use fapiao_chain::StateChange;
use fapiao_core::event::{DerivedKind, EventKind};
use fapiao_core::sig::Cores;
use fapiao_core::smt::{self, Node, NodeKey, NodeMap, NodeStore};
use fapiao_core::{
    codec, Block, BlockHash, Certificate, Entry, Equivocation, Event, EventId, Hash32, Header, InvoiceNumber,
    MemberCode,
};
use fapiao_domain::{StateKey, StateRead, StateValue};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, Direction, IteratorMode, Options, ReadOptions, WriteBatch,
    WriteOptions, DB,
};
use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A stored row as bytes: its key and value.
pub type RawRow = (Box<[u8]>, Box<[u8]>);

/// A stored row: its raw key and typed value.
pub type Row<T> = (Vec<u8>, <T as Table>::Value);

/// Whether [`Store::index_block`] writes a block's index rows or deletes them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Index {
    /// The block is committed.
    Add,
    /// The block is set aside.
    Remove,
}

/// Tuning for opening the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// RocksDB block cache, in bytes.
    pub block_cache_bytes: usize,
    /// The memory all column families' write buffers (memtables) may use together,
    /// in bytes: past it RocksDB flushes the largest. Without it each of the 18 column
    /// families could hold up to two 64 MiB memtables.
    pub memtable_bytes: usize,
    /// Open read-only (replay and export of a live node's data).
    pub read_only: bool,
    /// Skip the head consistency check at open (only `rebuild-state` does this).
    pub skip_check: bool,
    /// Read every row of every table file at open, checksums verified, so a damaged file
    /// refuses the start instead of failing a read later (see [`Store::verify_files`]).
    pub verify_files: bool,
    /// How many days of block time of each chain's state versions are kept (besides its
    /// last [`crate::STATE_VERSIONS_KEPT`] blocks); older ones are pruned as blocks commit.
    pub state_history_days: u64,
    /// A scratch store this process builds from blocks and can build again (replay's
    /// target): its writes skip the write-ahead log, so a crash loses them all, and
    /// [`Store::flush`] makes them durable.
    pub scratch: bool,
    /// Bound the store's memory by `block_cache_bytes`, whatever the ledger's size:
    /// index and filter blocks are charged to the block cache (and partitioned in the
    /// files this store writes), none pinned, and memtables are charged to it too, flushed
    /// once they pass `memtable_bytes`. Each family's memtable is also capped at half of
    /// `memtable_bytes`, two at most (one filling, one flushing): a write that would need
    /// a third waits for the flush. Without that cap memtables waiting to be flushed
    /// piled up to five times `memtable_bytes` in a replay. Replay uses it; a node, whose
    /// reads are random, keeps its index and filter blocks out of the cache.
    pub bounded_memory: bool,
    /// Run compactions at the lowest CPU priority (the flush keeps its own), so that on
    /// a busy machine they take the CPU the node's threads leave instead of stretching
    /// rounds of attestations (BENCHMARKS.md, fifteenth session). RocksDB's thread pools
    /// are the process's, so this lowers them for every store the process opens: the
    /// node's ledger sets it; replay, whose compactions must keep up with its writes, and
    /// tests, which run many stores in one process, do not.
    pub nice_compactions: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            block_cache_bytes: 256 * 1024 * 1024,
            memtable_bytes: 128 * 1024 * 1024,
            read_only: false,
            skip_check: false,
            verify_files: true,
            state_history_days: crate::STATE_HISTORY_DAYS,
            scratch: false,
            bounded_memory: false,
            nice_compactions: false,
        }
    }
}

/// The node's database.
pub struct Store {
    db: DB,
    path: PathBuf,
    read_only: bool,
    /// Writes skip the write-ahead log ([`StoreOptions::scratch`]).
    scratch: bool,
    /// How long each chain's state versions are kept, in ms of block time.
    history_ms: u64,
    /// The block cache every family shares (memtables charged to it when bounded).
    cache: Cache,
    /// Its share for data, index and filter blocks: all of it, less the memtables'
    /// budget in a `bounded_memory` store ([`Store::done_writing`]).
    read_cache_bytes: usize,
}

/// The column family in which ledgers written before versioned state kept each block's
/// undo. Opening such a ledger drops it and starts its chains' versions at their heads
/// (see [`Store::open`]).
const LEGACY_UNDO: &str = "state_undo";

/// One block's state change (records written, tree nodes changed, the root after it,
/// from the block builder or a re-execution), for the chain it is committed to, with
/// its node changes grouped by the tree page that holds them: as the commit writes
/// them, and as the next block, built while this one is written, reads them (a page
/// read from the store is brought up to date once, and its nodes are then read from it,
/// instead of every node read looking the block's changes up first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedState {
    /// The chain.
    pub chain: MemberCode,
    /// The state records written.
    pub writes: BTreeMap<StateKey, StateValue>,
    /// The state root after the block (equal to its header's).
    pub root: Hash32,
    /// The tree node changes (`None` = deleted) by page.
    pages: pages::Changes,
}

impl PreparedState {
    /// `chain`'s state change, to commit.
    pub fn new(chain: MemberCode, change: StateChange) -> PreparedState {
        PreparedState {
            chain,
            pages: pages::group(&change.tree),
            writes: change.writes,
            root: change.root,
        }
    }
}

/// Everything one block commit writes, atomically.
pub struct BlockCommit<'a> {
    /// The block.
    pub block: &'a Block,
    /// Its state changes (root must equal the header's state root).
    pub state: &'a PreparedState,
    /// Pending sequence numbers now in this block or dropped.
    pub pending_done: &'a [u64],
    /// Admitted events dropped at execution.
    pub rejected: &'a [(EventId, RejectedInfo)],
    /// This node's vote for the block, if it votes.
    pub vote: Option<BlockHash>,
    /// The block's certificate, if already known.
    pub certificate: Option<&'a Certificate>,
}

/// What one block overwrote in its chain's state: the stored bytes of each tree page and
/// record before it (`None`: there was none).
struct Versions {
    tree: Vec<(NodeKey, Option<Vec<u8>>)>,
    records: Vec<(StateKey, Option<Vec<u8>>)>,
}

/// Attempts of a read-only open that raced the node's compaction (see [`Store::open`]).
const READ_ONLY_OPEN_ATTEMPTS: u32 = 8;

/// One column family's options. With `table` (the store's block cache and filters),
/// every family shares that one cache; without it RocksDB gives each family a block
/// cache of its own and no bloom filter, so memory would grow with the number of
/// families and lookups of absent keys would read data blocks. `memtable_cap` caps the
/// family's memtables (see [`StoreOptions::bounded_memory`]).
fn cf_options(name: &str, table: Option<&BlockBasedOptions>, memtable_cap: Option<usize>) -> Options {
    let mut o = Options::default();
    if let Some(cap) = memtable_cap {
        o.set_write_buffer_size(cap);
        o.set_max_write_buffer_number(2);
    }
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    if name == State::NAME || name == Tree::NAME {
        // A bloom filter over each memtable's keys: most reads of the state and its tree
        // are of rows written long ago, which without it searched the whole skiplist of
        // every memtable before the table files (a twentieth of the producer's time).
        o.set_memtable_prefix_bloom_ratio(0.02);
        o.set_memtable_whole_key_filtering(true);
    }
    if let Some(t) = table {
        o.set_block_based_table_factory(t);
    }
    o
}

/// Every column family of a store, with its options: `tables::ALL`, and the legacy undo
/// family where the ledger still has it (so an open can drop it). Opened by name alone,
/// each family would have RocksDB's defaults instead: a block cache of its own and its
/// index and filter blocks held outside any cache (850 MB on a 10M-event ledger).
fn descriptors(
    legacy: bool,
    table: Option<&BlockBasedOptions>,
    memtable_cap: Option<usize>,
) -> impl Iterator<Item = ColumnFamilyDescriptor> + '_ {
    tables::ALL
        .iter()
        .chain(legacy.then_some(&LEGACY_UNDO))
        .map(move |n| ColumnFamilyDescriptor::new(*n, cf_options(n, table, memtable_cap)))
}

/// The block-based table options every column family of one store shares: one LRU block
/// cache of `cache_bytes` and bloom filters. Index and filter blocks stay with their
/// table files, outside the cache: charged to a small cache they were evicted and read
/// again on most lookups, which halved replay's rate on a million-event ledger
/// (BENCHMARKS.md); held, they take about 1.5 bytes per key.
fn table_options(cache: &Cache, bounded: bool) -> BlockBasedOptions {
    let mut t = BlockBasedOptions::default();
    t.set_block_cache(cache);
    t.set_bloom_filter(10.0, false);
    if bounded {
        // StoreOptions::bounded_memory.
        t.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
        t.set_partition_filters(true);
        t.set_cache_index_and_filter_blocks(true);
        // Nothing pinned: a node writes whole (unpartitioned) index and filter blocks,
        // whose "top level" is all of them, so pinned they would grow with the ledger.
        t.set_pin_top_level_index_and_filter(false);
        t.set_pin_l0_filter_and_index_blocks_in_cache(false);
    }
    t
}

/// The database's options and the table options every column family shares.
fn db_options(options: &StoreOptions) -> (Options, BlockBasedOptions, Cache) {
    let mut db_opts = Options::default();
    db_opts.create_if_missing(!options.read_only);
    db_opts.create_missing_column_families(!options.read_only);
    db_opts.set_paranoid_checks(true);
    // Every write is synced, so a torn record can only end the log after a crash
    // and was never acknowledged: drop it. Damage anywhere else in the log would
    // silently drop acknowledged writes after it, so it refuses the open instead.
    db_opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::TolerateCorruptedTailRecords);
    let cache = Cache::new_lru_cache(options.block_cache_bytes);
    let table_opts = table_options(&cache, options.bounded_memory);
    db_opts.set_block_based_table_factory(&table_opts);
    if options.bounded_memory {
        db_opts.set_write_buffer_manager(&rocksdb::WriteBufferManager::new_write_buffer_manager_with_cache(
            options.memtable_bytes,
            false,
            cache.clone(),
        ));
    }
    db_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    db_opts.set_db_write_buffer_size(options.memtable_bytes);
    if options.nice_compactions {
        if let Ok(mut env) = rocksdb::Env::new() {
            env.lower_thread_pool_cpu_priority();
            db_opts.set_env(&env);
        }
    }
    db_opts.increase_parallelism(2);
    (db_opts, table_opts, cache)
}

impl Store {
    /// Opens (creating if missing) the store at `path`, then checks every chain's head:
    /// the head block's hash, its parent link, and that the stored state tree's root is
    /// the head's state root. A mismatch refuses to open with the repair command.
    pub fn open(path: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        let (mut db_opts, table_opts, cache) = db_options(options);
        let legacy = DB::list_cf(&db_opts, path).is_ok_and(|cfs| cfs.iter().any(|c| c == LEGACY_UNDO));
        if legacy && options.read_only {
            return Err(StoreError::Open {
                path: path.to_path_buf(),
                message: "this ledger was written before versioned state; start its node once (which upgrades it in place) before reading it".into(),
            });
        }
        let memtable_cap = options.bounded_memory.then_some(options.memtable_bytes / 2);
        let families = || descriptors(legacy, Some(&table_opts), memtable_cap);
        let db = if options.read_only {
            // A read-only open of a ledger its node is writing (an audit of a running
            // node) can lose a race: the node's compaction deletes a table file between
            // this open reading the manifest and opening the file. The next attempt
            // reads the newer manifest. Once open, every table file is held open
            // (`max_open_files` is unlimited), so later deletions do not matter.
            db_opts.set_max_open_files(-1);
            let mut attempt = 0;
            loop {
                match DB::open_cf_descriptors_read_only(&db_opts, path, families(), false) {
                    Err(e) if attempt < READ_ONLY_OPEN_ATTEMPTS && e.to_string().contains("No such file") => {
                        attempt += 1;
                        std::thread::sleep(std::time::Duration::from_millis(50 * attempt as u64));
                    }
                    other => break other,
                }
            }
        } else {
            DB::open_cf_descriptors(&db_opts, path, families())
        }
        .map_err(|e| open_error(path, e))?;
        let mut store = Store {
            db,
            path: path.to_path_buf(),
            read_only: options.read_only,
            scratch: options.scratch,
            history_ms: options.state_history_days.saturating_mul(86_400_000),
            cache,
            read_cache_bytes: if options.bounded_memory {
                options.block_cache_bytes.saturating_sub(options.memtable_bytes)
            } else {
                options.block_cache_bytes
            },
        };
        if legacy && !options.read_only {
            store.take_up_versions()?;
        }
        if !options.skip_check {
            store.check_heads()?;
            if options.verify_files && !options.read_only {
                store.verify_files()?;
            }
        }
        Ok(store)
    }

    /// Upgrades a ledger written before versioned state: its per-block undo is dropped,
    /// and each chain keeps versions from its head on (older heights answer as not kept).
    fn take_up_versions(&mut self) -> Result<(), StoreError> {
        let mut b = WriteBatch::default();
        for (chain, head) in self.heads()? {
            self.put::<HistoryFrom>(&mut b, &chain, &(head.height + 1));
        }
        self.write_synced(b)?;
        self.db.drop_cf(LEGACY_UNDO).map_err(StoreError::rocks)
    }

    /// Opens the store for `rebuild-state`: every table derived from blocks (state,
    /// state tree, indexes) is dropped with its files, damaged ones included, and made
    /// again empty, and the heads are removed; blocks, certificates, votes and pending
    /// events are kept. Replay then fills the derived tables from the blocks.
    pub fn open_cleared(path: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        {
            let mut db_opts = Options::default();
            db_opts.create_if_missing(false);
            // A damaged file of a derived table must not stop its own removal: the
            // size check at open is skipped here only; the reopen below checks again.
            // Deprecated in RocksDB 10.5 (checked differently there); this build is 10.4.
            #[allow(deprecated)]
            db_opts.set_skip_checking_sst_file_sizes_on_db_open(true);
            db_opts.set_paranoid_checks(false);
            let legacy = DB::list_cf(&db_opts, path).is_ok_and(|cfs| cfs.iter().any(|c| c == LEGACY_UNDO));
            let mut db = DB::open_cf_descriptors(&db_opts, path, descriptors(legacy, None, None))
                .map_err(|e| open_error(path, e))?;
            for name in tables::DERIVED
                .iter()
                .chain([&tables::Heads::NAME, &tables::HistoryFrom::NAME])
            {
                db.drop_cf(name).map_err(StoreError::rocks)?;
                db.create_cf(name, &cf_options(name, None, None))
                    .map_err(StoreError::rocks)?;
            }
            if legacy {
                db.drop_cf(LEGACY_UNDO).map_err(StoreError::rocks)?;
            }
        }
        Store::open(
            path,
            &StoreOptions {
                skip_check: true,
                ..options.clone()
            },
        )
    }

    /// Reads every row of every column family with block checksums verified, bypassing
    /// the cache: a damaged table file is found now, at start, not by some later read.
    /// The time is one sequential read of the database.
    pub fn verify_files(&self) -> Result<(), StoreError> {
        for name in tables::ALL {
            let mut ro = ReadOptions::default();
            ro.set_verify_checksums(true);
            ro.fill_cache(false);
            ro.set_readahead_size(4 * 1024 * 1024);
            for item in self.db.iterator_cf_opt(self.cf(name), ro, IteratorMode::Start) {
                item.map_err(|e| open_error(&self.path, e))?;
            }
        }
        Ok(())
    }

    /// After the last write (replay's store, before its comparison): the memtables go to
    /// the files, and the cache gives up the memtables' share, so the reads that follow
    /// fill what blocks had while writing, not the whole cache: the comparison of a
    /// ten-million-event replay otherwise grew its peak memory by a tenth (BENCHMARKS.md).
    pub fn done_writing(&self) -> Result<(), StoreError> {
        self.flush()?;
        self.cache.clone().set_capacity(self.read_cache_bytes);
        Ok(())
    }

    /// Writes every memtable to table files (a clean stop: the next start replays no log).
    pub fn flush(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Ok(());
        }
        for name in tables::ALL {
            self.db.flush_cf(self.cf(name)).map_err(StoreError::rocks)?;
        }
        Ok(())
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn cf(&self, name: &'static str) -> &rocksdb::ColumnFamily {
        match self.db.cf_handle(name) {
            Some(cf) => cf,
            None => panic!("column family {name} is created at open"),
        }
    }

    /// Reads a typed value.
    pub fn get<T: Table>(&self, key: &T::Key) -> Result<Option<T::Value>, StoreError> {
        let k = T::key(key);
        match self.db.get_pinned_cf(self.cf(T::NAME), &k).map_err(StoreError::rocks)? {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes).map(Some).map_err(|e| StoreError::Corrupt {
                table: T::NAME,
                key: hex_key(&k),
                message: e.to_string(),
            }),
        }
    }

    /// Typed values whose keys start with `prefix`, in key order, from `start` (a full
    /// key at or after the prefix), at most `limit`.
    pub fn scan<T: Table>(&self, prefix: &[u8], start: Option<&[u8]>, limit: usize) -> Result<Vec<Row<T>>, StoreError> {
        let from = start.unwrap_or(prefix);
        let iter = self
            .db
            .iterator_cf(self.cf(T::NAME), IteratorMode::From(from, Direction::Forward));
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item.map_err(StoreError::rocks)?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            let value = codec::decode(&v).map_err(|e| StoreError::Corrupt {
                table: T::NAME,
                key: hex_key(&k),
                message: e.to_string(),
            })?;
            out.push((k.to_vec(), value));
        }
        Ok(out)
    }

    /// Every row of the column family `table` in key order, raw, from one snapshot (the
    /// audit compares tables row by row without holding them in memory).
    pub fn raw_rows(&self, table: &'static str) -> impl Iterator<Item = Result<RawRow, StoreError>> + '_ {
        self.db
            .iterator_cf(self.cf(table), IteratorMode::Start)
            .map(|r| r.map_err(StoreError::rocks))
    }

    /// A cursor over the column family `table` that seeks, for a walk that skips most of
    /// its rows.
    pub(crate) fn raw_cursor(&self, table: &'static str) -> rocksdb::DBRawIteratorWithThreadMode<'_, DB> {
        self.db.raw_iterator_cf(self.cf(table))
    }

    /// The last typed value whose key starts with `prefix`.
    pub fn last<T: Table>(&self, prefix: &[u8]) -> Result<Option<Row<T>>, StoreError> {
        let mut upper = prefix.to_vec();
        upper.extend_from_slice(&[0xff; 24]);
        let mut iter = self
            .db
            .iterator_cf(self.cf(T::NAME), IteratorMode::From(&upper, Direction::Reverse));
        match iter.next() {
            Some(item) => {
                let (k, v) = item.map_err(StoreError::rocks)?;
                if !k.starts_with(prefix) {
                    return Ok(None);
                }
                let value = codec::decode(&v).map_err(|e| StoreError::Corrupt {
                    table: T::NAME,
                    key: hex_key(&k),
                    message: e.to_string(),
                })?;
                Ok(Some((k.to_vec(), value)))
            }
            None => Ok(None),
        }
    }

    pub(crate) fn put<T: Table>(&self, batch: &mut WriteBatch, key: &T::Key, value: &T::Value) {
        batch.put_cf(self.cf(T::NAME), T::key(key), codec::to_bytes(value));
    }

    pub(crate) fn delete<T: Table>(&self, batch: &mut WriteBatch, key: &T::Key) {
        batch.delete_cf(self.cf(T::NAME), T::key(key));
    }

    pub(crate) fn write_synced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        if self.scratch {
            return self.write_scratch(batch);
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(StoreError::rocks)
    }

    /// A scratch store's write, without the log, which never waits inside RocksDB: a
    /// write that would stall for a flush is refused (`no_slowdown`) and tried again
    /// here, every millisecond, until it goes through or the store reports the flush's
    /// error. Waiting inside RocksDB, a write stalled on a flush that then failed for a
    /// full disk waited for good: RocksDB keeps such writes waiting while it polls for
    /// free space to recover by itself, and a replay's disk stays full. A node's ledger
    /// keeps that wait (its disk reserve stops writes before the disk fills, and it
    /// resumes once there is room again). The batch's bytes are kept for the retries:
    /// RocksDB takes the batch. A refusal that names a background error instead of the
    /// stall is that error.
    fn write_scratch(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut wo = WriteOptions::default();
        wo.disable_wal(true);
        wo.set_no_slowdown(true);
        let bytes = batch.data().to_vec();
        let mut batch = batch;
        loop {
            match self.db.write_opt(batch, &wo) {
                Err(e) if e.kind() == rocksdb::ErrorKind::Incomplete && e.to_string().ends_with("Write stall") => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    batch = WriteBatch::from_data(&bytes);
                }
                other => return other.map_err(StoreError::rocks),
            }
        }
    }

    /// A chain's head.
    pub fn head(&self, chain: MemberCode) -> Result<Option<Head>, StoreError> {
        self.get::<Heads>(&chain)
    }

    /// Every chain with at least one block, with its head.
    pub fn heads(&self) -> Result<Vec<(MemberCode, Head)>, StoreError> {
        let rows = self.scan::<Heads>(&[], None, usize::MAX)?;
        rows.into_iter().map(|(k, h)| Ok((Heads::decode(&k)?, h))).collect()
    }

    /// A block header.
    pub fn header(&self, chain: MemberCode, height: u64) -> Result<Option<Header>, StoreError> {
        self.get::<Headers>(&(chain, height))
    }

    /// A whole block (header and entries), checked against its header's count and root.
    pub fn block(&self, chain: MemberCode, height: u64) -> Result<Option<Block>, StoreError> {
        let Some(header) = self.header(chain, height)? else {
            return Ok(None);
        };
        let entries: Vec<Entry> = self
            .scan::<Entries>(&tables::block_prefix(chain, height), None, usize::MAX)?
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        let block = Block { header, entries };
        block.check_entries().map_err(|_| StoreError::Inconsistent {
            chain,
            detail: format!("block {height}'s stored entries do not match its header"),
        })?;
        Ok(Some(block))
    }

    /// One entry.
    pub fn entry(&self, loc: &EntryLoc) -> Result<Option<Entry>, StoreError> {
        self.get::<Entries>(&(loc.chain, loc.height, loc.index))
    }

    /// A block's certificate, if it has one.
    pub fn certificate(&self, chain: MemberCode, height: u64) -> Result<Option<Certificate>, StoreError> {
        self.get::<Certs>(&(chain, height))
    }

    /// This node's vote at (chain, height), if it voted.
    pub fn vote(&self, chain: MemberCode, height: u64) -> Result<Option<BlockHash>, StoreError> {
        self.get::<Votes>(&(chain, height))
    }

    /// Persists a vote (synced) before the attestation is sent.
    pub fn put_vote(&self, chain: MemberCode, height: u64, block: BlockHash) -> Result<(), StoreError> {
        let mut b = WriteBatch::default();
        self.put::<Votes>(&mut b, &(chain, height), &block);
        self.write_synced(b)
    }

    /// The certified prefix recorded at the last start (see [`CertifiedPrefix`]).
    pub fn certified_prefix(&self, chain: MemberCode) -> Result<u64, StoreError> {
        Ok(self.get::<CertifiedPrefix>(&chain)?.unwrap_or(0))
    }

    /// Records a certified prefix (synced).
    pub fn set_certified_prefix(&self, chain: MemberCode, height: u64) -> Result<(), StoreError> {
        let mut b = WriteBatch::default();
        self.put::<CertifiedPrefix>(&mut b, &chain, &height);
        self.write_synced(b)
    }

    /// Stores a certificate (synced).
    pub fn put_certificate(&self, cert: &Certificate) -> Result<(), StoreError> {
        let mut b = WriteBatch::default();
        self.put::<Certs>(&mut b, &(cert.chain, cert.height), cert);
        self.write_synced(b)
    }

    /// Stores equivocation evidence for its chain (synced), unless some is stored already.
    pub fn put_evidence(&self, ev: &Equivocation) -> Result<(), StoreError> {
        let chain = ev.first.body.chain;
        if self.get::<EvidenceTable>(&chain)?.is_some() {
            return Ok(());
        }
        let mut b = WriteBatch::default();
        self.put::<EvidenceTable>(&mut b, &chain, ev);
        self.write_synced(b)
    }

    /// Every stored piece of evidence (one per frozen chain).
    pub fn evidence(&self) -> Result<Vec<Equivocation>, StoreError> {
        Ok(self
            .scan::<EvidenceTable>(&[], None, usize::MAX)?
            .into_iter()
            .map(|(_, e)| e)
            .collect())
    }

    /// Makes admitted events durable (one synced batch), under the given sequences.
    pub fn add_pending(&self, events: &[(u64, &Event)]) -> Result<(), StoreError> {
        let mut b = WriteBatch::default();
        for (seq, e) in events {
            self.put::<Pending>(&mut b, seq, e);
        }
        self.write_synced(b)
    }

    /// Every pending event, in admission order.
    pub fn pending(&self) -> Result<Vec<(u64, Event)>, StoreError> {
        self.scan::<Pending>(&[], None, usize::MAX)?
            .into_iter()
            .map(|(k, e)| {
                let seq = u64::from_be_bytes(k.as_slice().try_into().map_err(|_| StoreError::Corrupt {
                    table: Pending::NAME,
                    key: hex_key(&k),
                    message: "key is not 8 bytes".into(),
                })?);
                Ok((seq, e))
            })
            .collect()
    }

    /// The state view of one chain (implements the domain's `StateRead` and the tree's
    /// `NodeStore`), over one consistent snapshot. Every record it returns is checked
    /// against the state tree first (see [`Store::check_record`]): a record that does
    /// not match its leaf is [`StoreError::Tampered`], never served.
    pub fn state(&self, chain: MemberCode) -> ChainView<'_> {
        ChainView {
            store: self,
            chain,
            snap: self.db.snapshot(),
            verify: true,
            pages: Default::default(),
            verified: Default::default(),
            records: Default::default(),
            root: Default::default(),
            after: None,
        }
    }

    /// The state of `chain` as it is once `after`, a block this process prepared and is
    /// committing now, is stored: its writes and tree changes laid over the stored state.
    /// `after` must extend the stored head, or already be stored (its changes are then
    /// laid over themselves). The block producer executes its next block on this view
    /// while the previous one is being written.
    pub fn state_after(&self, chain: MemberCode, after: Arc<PreparedState>) -> ChainView<'_> {
        assert_eq!(after.chain, chain, "state prepared for another chain");
        ChainView {
            after: Some(after),
            ..self.state(chain)
        }
    }

    /// A view that skips the record check, for a store this process is building itself
    /// from blocks it verified (the target of a replay), or for a first look whose answer
    /// is checked before it is served (admission looks up a business id this way, and
    /// reads a record it finds again, checked).
    pub fn state_trusted(&self, chain: MemberCode) -> ChainView<'_> {
        ChainView {
            verify: false,
            ..self.state(chain)
        }
    }

    /// Computes the tree changes and new root for a block's state writes, over a fresh
    /// view; [`ChainView::prepare`] does it over the view the block was executed on.
    pub fn prepare_state(
        &self,
        chain: MemberCode,
        writes: BTreeMap<StateKey, StateValue>,
    ) -> Result<PreparedState, StoreError> {
        self.state(chain).prepare(writes)
    }

    /// The stored state root of a chain (the empty root for a chain with no state).
    pub fn state_root(&self, chain: MemberCode) -> Result<Hash32, StoreError> {
        let top = NodeKey::on_path(0, &smt::EMPTY);
        let root = self.get::<Tree>(&(chain, top))?.and_then(|p| p.node(&top));
        Ok(root.map(|n| n.hash()).unwrap_or(smt::EMPTY))
    }

    /// A proof of `key`'s current value in `chain`'s state.
    pub fn prove(&self, chain: MemberCode, key: &StateKey) -> Result<smt::StateProof, StoreError> {
        smt::prove(&self.state(chain), &smt::key_hash(&key.to_bytes())).map_err(|e| tree_err(chain, e))
    }

    /// Commits one block atomically (one synced WriteBatch): header, entries, entry
    /// index, business indexes, state, tree, head, and the pending events it consumed.
    /// Checks the chain invariants right before writing.
    // Long: the invariants asserted and every row of one block's single atomic WriteBatch; splitting it would
    // spread the batch that must stay one write.
    pub fn commit_block(&self, c: &BlockCommit<'_>) -> Result<(), StoreError> {
        let h = &c.block.header.body;
        let chain = h.chain;
        // Invariants: these are programming errors if they fail, not bad input.
        let head = self.head(chain)?;
        let (expect_height, expect_parent) = match head {
            Some(hd) => (hd.height + 1, hd.hash),
            None => (1, BlockHash(Hash32::ZERO)),
        };
        assert_eq!(h.height, expect_height, "block height must follow the head");
        assert_eq!(h.parent, expect_parent, "block parent must be the head");
        assert_eq!(c.state.chain, chain, "state prepared for another chain");
        assert_eq!(
            c.state.root, h.state_root,
            "header state root must be the prepared root"
        );
        if let Some(hd) = head {
            assert!(h.timestamp >= hd.timestamp, "block timestamps never go back");
        }
        c.block.check_entries().map_err(|_| StoreError::Inconsistent {
            chain,
            detail: format!("block {} entries do not match its header", h.height),
        })?;

        let mut b = WriteBatch::default();
        let hash = c.block.header.hash();
        self.put::<Headers>(&mut b, &(chain, h.height), &c.block.header);
        for (i, entry) in c.block.entries.iter().enumerate() {
            self.put::<Entries>(&mut b, &(chain, h.height, i as u32), entry);
        }
        self.index_block(&mut b, c.block, Index::Add);
        // What this block overwrites, read before the batch that overwrites it, is kept
        // as a version under this height; versions past the retention go.
        // A chain's blocks below its first versioned height keep no versions (a ledger
        // versioned from its upgrade on, or replay's scratch store; see `version_from`).
        let history_from = self.first_versioned(chain)?;
        let versioned = h.height >= history_from;
        let (versions, pages) = self.versions_of(chain, c.state, versioned)?;
        if versioned {
            self.put_versions(&mut b, chain, h.height, versions);
        }
        self.prune_versions(&mut b, chain, history_from, h.height, h.timestamp.0)?;
        for (k, v) in &c.state.writes {
            self.put::<State>(&mut b, &(chain, k.clone()), v);
        }
        for (k, page) in &pages {
            match page {
                Some(p) => b.put_cf(self.cf(Tree::NAME), Tree::key(&(chain, *k)), p.to_bytes()),
                None => self.delete::<Tree>(&mut b, &(chain, *k)),
            }
        }
        self.put::<Heads>(
            &mut b,
            &chain,
            &Head {
                height: h.height,
                hash,
                state_root: h.state_root,
                timestamp: h.timestamp,
            },
        );
        for seq in c.pending_done {
            self.delete::<Pending>(&mut b, seq);
        }
        for (id, info) in c.rejected {
            self.put::<Rejected>(&mut b, id, info);
        }
        if let Some(v) = c.vote {
            self.put::<Votes>(&mut b, &(chain, h.height), &v);
        }
        if let Some(cert) = c.certificate {
            assert_eq!(cert.block, hash, "certificate for another block");
            self.put::<Certs>(&mut b, &(chain, h.height), cert);
        }
        self.write_synced(b)
    }

    /// Writes one block's versions: what it overwrote, under its height, and the list
    /// of what it wrote.
    fn put_versions(&self, b: &mut WriteBatch, chain: MemberCode, height: u64, versions: Versions) {
        let mut written = Written::default();
        for (at, old) in versions.tree {
            self.put::<TreeVersions>(b, &(chain, at, height), &old);
            written.pages.push(at);
        }
        for (key, old) in versions.records {
            let k = (chain, key, height);
            self.put::<StateVersions>(b, &k, &old);
            written.records.push(k.1);
        }
        self.put::<StateWritten>(b, &(chain, height), &written);
    }

    /// Deletes the versions of `chain`'s oldest blocks, from its first versioned height
    /// `from` on, that are past the retention once the block at `height`, made at `time`,
    /// is the head: a block's versions go when it is more than
    /// [`crate::STATE_VERSIONS_KEPT`] blocks below the head and older than the retention
    /// in block time; at most [`crate::PRUNE_PER_COMMIT`] blocks' per call.
    fn prune_versions(
        &self,
        b: &mut WriteBatch,
        chain: MemberCode,
        from: u64,
        height: u64,
        time: u64,
    ) -> Result<(), StoreError> {
        let cutoff = time.saturating_sub(self.history_ms);
        let mut next = from;
        while next < from + crate::PRUNE_PER_COMMIT && next + crate::STATE_VERSIONS_KEPT <= height {
            match self.header(chain, next)? {
                Some(old) if old.body.timestamp.0 < cutoff => {}
                _ => break,
            }
            self.delete_versions(b, chain, next)?;
            next += 1;
        }
        if next != from {
            self.put::<HistoryFrom>(b, &chain, &next);
        }
        Ok(())
    }

    /// Deletes the versions block `height` of `chain` wrote, and their list.
    fn delete_versions(&self, b: &mut WriteBatch, chain: MemberCode, height: u64) -> Result<(), StoreError> {
        let written = self.get::<StateWritten>(&(chain, height))?.unwrap_or_default();
        self.delete_written(b, chain, height, &written);
        Ok(())
    }

    /// Deletes the versions `written` lists, which block `height` of `chain` wrote, and
    /// the list.
    pub(crate) fn delete_written(&self, b: &mut WriteBatch, chain: MemberCode, height: u64, written: &Written) {
        for at in &written.pages {
            self.delete::<TreeVersions>(b, &(chain, *at, height));
        }
        for key in &written.records {
            self.delete::<StateVersions>(b, &(chain, key.clone(), height));
        }
        self.delete::<StateWritten>(b, &(chain, height));
    }

    /// What `state` overwrites, when its block keeps versions (`versioned`): the delta of
    /// every tree page it changes and the current bytes of every record it writes; and
    /// the tree pages after its node changes. One batched lookup per table. Tree keys
    /// come in byte order (chain, depth, prefix), as RocksDB reads them best; record keys
    /// are ordered by `StateKey`, not by their bytes.
    #[allow(clippy::type_complexity)]
    fn versions_of(
        &self,
        chain: MemberCode,
        state: &PreparedState,
        versioned: bool,
    ) -> Result<(Versions, Vec<(NodeKey, Option<Page>)>), StoreError> {
        let mut touched: Vec<_> = state.pages.iter().collect();
        touched.sort_unstable_by_key(|(at, _)| **at);
        let tree_keys: Vec<Vec<u8>> = touched.iter().map(|(at, _)| Tree::key(&(chain, **at))).collect();
        let old_pages = self.db.batched_multi_get_cf(self.cf(Tree::NAME), &tree_keys, true);
        let mut tree = Vec::with_capacity(touched.len());
        let mut new_pages = Vec::with_capacity(touched.len());
        for ((&(at, changes), old), key) in touched.iter().zip(old_pages).zip(&tree_keys) {
            let page = match old.map_err(StoreError::rocks)? {
                None => None,
                Some(bytes) => Some(page_from(Tree::NAME, key, &bytes)?),
            };
            if versioned {
                tree.push((*at, PageVersion::of(page.as_ref(), changes).to_stored()));
            }
            new_pages.push((*at, pages::apply(page, changes)));
        }
        let mut records = Vec::new();
        if versioned {
            let writes = &state.writes;
            let keys: Vec<Vec<u8>> = writes.keys().map(|k| State::key(&(chain, k.clone()))).collect();
            let old = self.db.batched_multi_get_cf(self.cf(State::NAME), &keys, false);
            records.reserve(keys.len());
            for (key, old) in writes.keys().zip(old) {
                records.push((key.clone(), old.map_err(StoreError::rocks)?.map(|v| v.to_vec())));
            }
        }
        let versions = Versions { tree, records };
        Ok((versions, new_pages))
    }

    /// The state of `chain` as of `height`, read from one snapshot: each record is its
    /// first version above `height` (what the next block to overwrite it overwrote) or,
    /// with none, its current bytes; each tree page is read from its versions above
    /// `height` in the same way, node by node ([`pages::page_as_of`]). `None` when `height` is above the
    /// head, or older than the versions kept (see [`crate::STATE_HISTORY_DAYS`]).
    pub fn state_at(&self, chain: MemberCode, height: u64) -> Result<Option<StateAt<'_>>, StoreError> {
        let view = self.state_trusted(chain);
        let Some(head) = view.typed::<Heads>(&chain)? else {
            return Ok(None);
        };
        if height > head.height || height + 1 < view.typed::<HistoryFrom>(&chain)?.unwrap_or(1) {
            return Ok(None);
        }
        Ok(Some(StateAt {
            view,
            height,
            pages: RefCell::default(),
        }))
    }

    /// The bytes each column family takes: its table files on disk and its memtables.
    pub fn table_bytes(&self) -> Result<Vec<(&'static str, u64)>, StoreError> {
        tables::ALL
            .iter()
            .map(|name| {
                let prop = |p: &str| {
                    self.db
                        .property_int_value_cf(self.cf(name), p)
                        .map(|v| v.unwrap_or(0))
                        .map_err(StoreError::rocks)
                };
                Ok((
                    *name,
                    prop("rocksdb.total-sst-files-size")? + prop("rocksdb.cur-size-all-mem-tables")?,
                ))
            })
            .collect()
    }

    /// Versions `chain`'s state from block `height` on: the blocks below it, not yet
    /// committed, will keep none, as if pruned. Replay's scratch store, which keeps only
    /// the last [`crate::STATE_VERSIONS_KEPT`] blocks' versions in the end, writes only
    /// those instead of writing every block's and pruning them behind it.
    pub(crate) fn version_from(&self, chain: MemberCode, height: u64) -> Result<(), StoreError> {
        assert!(
            self.head(chain)?.is_none(),
            "versions start before a chain's first block"
        );
        let mut b = WriteBatch::default();
        self.put::<HistoryFrom>(&mut b, &chain, &height);
        self.write_synced(b)
    }

    /// How many days of block time of each chain's state versions this store keeps.
    pub fn history_days(&self) -> u64 {
        self.history_ms / 86_400_000
    }

    /// The oldest height of `chain` whose state is kept (see [`Store::state_at`]).
    pub fn oldest_kept(&self, chain: MemberCode) -> Result<u64, StoreError> {
        Ok(self.first_versioned(chain)?.saturating_sub(1).max(1))
    }

    /// The lowest height of `chain` whose block's versions the store keeps (1 when it
    /// never pruned any): every version row of a block at or above it is present.
    pub(crate) fn first_versioned(&self, chain: MemberCode) -> Result<u64, StoreError> {
        Ok(self.get::<HistoryFrom>(&chain)?.unwrap_or(1))
    }

    /// Writes (or, to set the block aside, deletes) every index row of `block`'s entries:
    /// the entry index by id, the business indexes and each invoice's history.
    pub(crate) fn index_block(&self, b: &mut WriteBatch, block: &Block, op: Index) {
        let (chain, height) = (block.header.body.chain, block.header.body.height);
        // A derived failure names no invoice: it is about the invoice its cause is about.
        let about: HashMap<EventId, InvoiceNumber> = block
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Event(ev) => ev.body.kind.invoice().map(|n| (ev.id(), n)),
                Entry::Derived(_) => None,
            })
            .collect();
        for (i, entry) in block.entries.iter().enumerate() {
            let loc = EntryLoc {
                chain,
                height,
                index: i as u32,
            };
            self.index_entry(b, entry, loc, op);
            let invoices = match entry {
                Entry::Event(e) => e.body.kind.invoice().into_iter().collect(),
                Entry::Derived(d) => match d.kind.invoices() {
                    v if v.is_empty() => about.get(&d.cause).copied().into_iter().collect(),
                    v => v,
                },
            };
            for n in invoices {
                self.row::<IdxInvoiceHistory>(b, &(n, chain, height, loc.index), &loc, op);
            }
        }
    }

    fn row<T: Table>(&self, b: &mut WriteBatch, key: &T::Key, value: &T::Value, op: Index) {
        match op {
            Index::Add => self.put::<T>(b, key, value),
            Index::Remove => self.delete::<T>(b, key),
        }
    }

    fn index_entry(&self, b: &mut WriteBatch, entry: &Entry, loc: EntryLoc, op: Index) {
        self.row::<Events>(b, &entry.id(), &loc, op);
        let chain = loc.chain;
        match entry {
            Entry::Event(e) => match &e.body.kind {
                EventKind::PaymentRecorded(p) => self.row::<IdxPayment>(b, &(chain, p.payment_id.clone()), &loc, op),
                EventKind::InvoiceRequested(r) => self.row::<IdxRequest>(b, &(chain, r.request_id.clone()), &loc, op),
                EventKind::InvoiceRedLetterRequested(r) => {
                    self.row::<IdxRequest>(b, &(chain, r.request_id.clone()), &loc, op)
                }
                _ => {}
            },
            Entry::Derived(d) => match &d.kind {
                DerivedKind::InvoiceIssued(i) => self.row::<IdxInvoice>(b, &i.number, &loc, op),
                DerivedKind::InvoiceReversed(r) => self.row::<IdxInvoice>(b, &r.red_number, &loc, op),
                DerivedKind::InvoiceFailed(f) => {
                    self.row::<IdxFailure>(b, &(chain, failure_index(f.reason), f.request_id.clone()), &loc, op)
                }
                _ => {}
            },
        }
    }

    /// Removes pending events that did not make it into a block, recording why.
    pub fn drop_pending(&self, seqs: &[u64], rejected: &[(EventId, RejectedInfo)]) -> Result<(), StoreError> {
        let mut b = WriteBatch::default();
        for s in seqs {
            self.delete::<Pending>(&mut b, s);
        }
        for (id, info) in rejected {
            self.put::<Rejected>(&mut b, id, info);
        }
        self.write_synced(b)
    }

    /// Where an entry is, by id. The entry found there must have that id: a rewritten
    /// index row is [`StoreError::Tampered`], never an answer.
    pub fn locate(&self, id: &EventId) -> Result<Option<EntryLoc>, StoreError> {
        let Some(loc) = self.get::<Events>(id)? else {
            return Ok(None);
        };
        match self.entry(&loc)? {
            Some(e) if e.id() == *id => Ok(Some(loc)),
            _ => Err(StoreError::Tampered {
                chain: loc.chain,
                key: format!("entry index row of {id}"),
                detail: format!(
                    "it points at block {} entry {}, which is not that entry",
                    loc.height, loc.index
                ),
            }),
        }
    }

    /// Why an admitted event was dropped, if it was.
    pub fn rejected(&self, id: &EventId) -> Result<Option<RejectedInfo>, StoreError> {
        self.get::<Rejected>(id)
    }

    /// Checks every head (see [`Store::open`]).
    pub fn check_heads(&self) -> Result<(), StoreError> {
        for (chain, head) in self.heads()? {
            let bad = |detail: String| StoreError::Inconsistent { chain, detail };
            let header = self
                .header(chain, head.height)?
                .ok_or_else(|| bad(format!("head block {} is missing", head.height)))?;
            if header.hash() != head.hash {
                return Err(bad(format!(
                    "head block {} does not hash to the recorded head",
                    head.height
                )));
            }
            if head.height > 1 {
                let parent = self
                    .header(chain, head.height - 1)?
                    .ok_or_else(|| bad(format!("block {} is missing", head.height - 1)))?;
                if parent.hash() != header.body.parent {
                    return Err(bad(format!(
                        "block {} does not link to block {}",
                        head.height,
                        head.height - 1
                    )));
                }
            }
            let root = self.state_root(chain)?;
            if root != header.body.state_root {
                return Err(bad(format!(
                    "stored state root {} is not head block {}'s state root {}",
                    root, head.height, header.body.state_root
                )));
            }
        }
        Ok(())
    }

    /// Deletes every block-derived table (state, tree, indexes) so they can be rebuilt
    /// from the blocks. Blocks, certificates, votes and pending events are kept.
    pub fn clear_derived(&self) -> Result<(), StoreError> {
        for name in tables::DERIVED.iter().chain([&HistoryFrom::NAME]) {
            let cf = self.cf(name);
            let mut b = WriteBatch::default();
            b.delete_range_cf(cf, [0u8; 0].as_slice(), [0xffu8; 64].as_slice());
            self.write_synced(b)?;
        }
        let mut b = WriteBatch::default();
        for (chain, _) in self.heads()? {
            self.delete::<Heads>(&mut b, &chain);
        }
        self.write_synced(b)
    }

    /// Puts a head back after `clear_derived` without touching anything else.
    pub fn set_head(&self, chain: MemberCode, head: &Head) -> Result<(), StoreError> {
        let mut b = WriteBatch::default();
        self.put::<Heads>(&mut b, &chain, head);
        self.write_synced(b)
    }

    /// A consistent copy of the ledger at `dir` that shares no file with it. RocksDB's
    /// checkpoint hard-links table files on the same file system, and a hard link is
    /// the same data on disk: a damaged table file would be damaged in the backup
    /// too. Every linked file is therefore replaced by a copy, synced before it is
    /// renamed into place.
    pub fn checkpoint(&self, dir: &Path) -> Result<(), StoreError> {
        use std::os::unix::fs::MetadataExt;
        let cp = rocksdb::checkpoint::Checkpoint::new(&self.db).map_err(StoreError::rocks)?;
        cp.create_checkpoint(dir).map_err(StoreError::rocks)?;
        let io = |e: std::io::Error| StoreError::Io(e.to_string());
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if std::fs::metadata(&path).map_err(io)?.nlink() > 1 {
                let copy = path.with_extension("copying");
                std::fs::copy(&path, &copy).map_err(io)?;
                std::fs::File::open(&copy).and_then(|f| f.sync_all()).map_err(io)?;
                std::fs::rename(&copy, &path).map_err(io)?;
            }
        }
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)
    }
}

/// The failure index's reason number (the enum index in the canonical encoding).
pub fn failure_index(reason: fapiao_core::event::FailureReason) -> u32 {
    reason.index()
}

/// A RocksDB error at open or while verifying: damage to a file is
/// [`StoreError::Damaged`] (RocksDB's message names the file), anything else is
/// [`StoreError::Open`].
fn open_error(path: &Path, e: rocksdb::Error) -> StoreError {
    if e.kind() == rocksdb::ErrorKind::Corruption {
        let mut message = e.to_string();
        if !message.contains(".sst") && !message.contains(".log") {
            if let Some(wal) = wal_being_recovered(path) {
                message.push_str(&format!(" (while recovering the write-ahead log {wal})"));
            }
        }
        StoreError::Damaged {
            path: path.to_path_buf(),
            message,
        }
    } else {
        StoreError::Open {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

/// RocksDB's error for a damaged write-ahead log does not name the file; its info log
/// (`LOG`, written by the open that just failed) does, as "Recovering log #N".
fn wal_being_recovered(path: &Path) -> Option<String> {
    let log = std::fs::read_to_string(path.join("LOG")).ok()?;
    let line = log.lines().rev().find(|l| l.contains("Recovering log #"))?;
    let number: u64 = line
        .split("Recovering log #")
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some(format!("{number:06}.log"))
}

pub(crate) fn tree_err(chain: MemberCode, e: smt::TreeError<StoreError>) -> StoreError {
    match e {
        smt::TreeError::Read(e) => e,
        smt::TreeError::Corrupt(depth) => StoreError::Inconsistent {
            chain,
            detail: format!("state tree is malformed at depth {depth}"),
        },
    }
}

/// A tree page from its stored bytes in `table` under `key`; bytes that encode none are
/// [`StoreError::Corrupt`].
fn page_from(table: &'static str, key: &[u8], bytes: &[u8]) -> Result<Page, StoreError> {
    Page::from_bytes(bytes).map_err(|message| StoreError::Corrupt {
        table,
        key: hex_key(key),
        message,
    })
}

pub(crate) fn hex_key(k: &[u8]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}

/// One chain's state, read from one snapshot of the store.
///
/// A view keeps every tree page it has read, so the many reads and tree updates of one
/// block read the shared upper levels of the tree once, not once per record: a block's
/// thousands of record checks and leaf updates share all but their last few levels.
/// The snapshot never changes, so neither can what the view keeps.
pub struct ChainView<'a> {
    store: &'a Store,
    chain: MemberCode,
    snap: rocksdb::Snapshot<'a>,
    /// Check every record against the state tree before returning it.
    verify: bool,
    /// Tree pages read so far, and their absence. (Boxed: a page is a kilobyte, and
    /// the table's probes and growth then move pointers, not pages.)
    pages: RefCell<NodeMap<Option<Box<Page>>>>,
    /// Tree nodes already found to hash to what their parent (or the root) records, so a
    /// later path through them is not hashed again.
    verified: RefCell<foldhash::HashSet<NodeKey>>,
    /// Records already read (and checked): a block reads some, such as its client's key,
    /// once per event.
    records: RefCell<foldhash::HashMap<StateKey, Option<StateValue>>>,
    /// The state root the snapshot's head commits to, once read.
    root: OnceCell<Hash32>,
    /// A block being committed, seen as stored (see [`Store::state_after`]). Its records
    /// and nodes come from this process's memory, not from the disk, so they are not
    /// checked against the tree.
    after: Option<Arc<PreparedState>>,
}

impl ChainView<'_> {
    /// This view without the record check (see [`Store::state_trusted`]).
    pub(crate) fn trusted(self) -> Self {
        ChainView { verify: false, ..self }
    }

    /// Computes the tree changes and new root for a block's state writes, over the
    /// nodes this view has already read.
    pub fn prepare(&self, writes: BTreeMap<StateKey, StateValue>) -> Result<PreparedState, StoreError> {
        let change = StateChange::of(self, writes, Cores::All).map_err(|e| tree_err(self.chain, e))?;
        Ok(PreparedState::new(self.chain, change))
    }

    /// The state root the snapshot's head commits to (empty for a chain with no head).
    fn head_root(&self) -> Result<Hash32, StoreError> {
        if let Some(after) = &self.after {
            return Ok(after.root);
        }
        if let Some(r) = self.root.get() {
            return Ok(*r);
        }
        let r = self
            .typed::<Heads>(&self.chain)?
            .map(|h| h.state_root)
            .unwrap_or(smt::EMPTY);
        Ok(*self.root.get_or_init(|| r))
    }

    fn raw<T: Table>(&self, key: &T::Key) -> Result<Option<Vec<u8>>, StoreError> {
        self.snap
            .get_cf(self.store.cf(T::NAME), T::key(key))
            .map_err(StoreError::rocks)
    }

    /// The stored tree page at `at`, decoded directly ([`Page::from_bytes`]).
    pub(crate) fn page(&self, at: NodeKey) -> Result<Option<Page>, StoreError> {
        let key = (self.chain, at);
        match self.raw::<Tree>(&key)? {
            None => Ok(None),
            Some(bytes) => page_from(Tree::NAME, &Tree::key(&key), &bytes).map(Some),
        }
    }

    fn typed<T: Table>(&self, key: &T::Key) -> Result<Option<T::Value>, StoreError> {
        match self.raw::<T>(key)? {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes).map(Some).map_err(|e| StoreError::Corrupt {
                table: T::NAME,
                key: hex_key(&T::key(key)),
                message: e.to_string(),
            }),
        }
    }

    /// Checks `value` (its stored bytes, or `None` when absent) against the state tree of
    /// this snapshot: walk from the root the chain's head commits to down `key`'s path,
    /// check that every node hashes to what its parent records, and that the leaf found
    /// (or its absence) is the record's. A node that breaks the chain of hashes is
    /// [`StoreError::Inconsistent`] (the tree is damaged: repair with `rebuild-state`);
    /// a record that does not match is [`StoreError::Tampered`].
    fn check(&self, key: &StateKey, value: Option<&[u8]>) -> Result<(), StoreError> {
        let chain = self.chain;
        let path = smt::key_hash(&key.to_bytes());
        let mut expected = self.head_root()?;
        let mut depth = 0u8;
        let leaf = loop {
            if expected == smt::EMPTY {
                break None;
            }
            let broken = |what: &str| StoreError::Inconsistent {
                chain,
                detail: format!("state tree node at depth {depth} on the path of {key:?} {what}"),
            };
            let at = NodeKey::on_path(depth, &path);
            let node = self.node(&at)?.ok_or_else(|| broken("is missing"))?;
            if !self.verified.borrow().contains(&at) {
                if node.hash() != expected {
                    return Err(broken(
                        "does not hash to what its parent (or the head's state root) records",
                    ));
                }
                self.verified.borrow_mut().insert(at);
            }
            match node {
                Node::Leaf { key_hash, value_hash } => break (key_hash == path).then_some(value_hash),
                Node::Inner { left, right } => {
                    if depth == u8::MAX {
                        return Err(broken("is an inner node at the deepest level"));
                    }
                    expected = if smt::bit(&path, depth) == 0 { left } else { right };
                    depth += 1;
                }
            }
        };
        let tampered = |detail: &str| {
            Err(StoreError::Tampered {
                chain,
                key: format!("{key:?}"),
                detail: detail.into(),
            })
        };
        match (value, leaf) {
            (None, None) => Ok(()),
            (Some(v), Some(h)) if smt::value_hash(v) == h => Ok(()),
            (Some(_), Some(_)) => {
                tampered("its stored bytes do not hash to its leaf in the state tree (the record was rewritten)")
            }
            (Some(_), None) => tampered("the state tree has no leaf for it (the record was added outside a block)"),
            (None, Some(_)) => tampered("the state tree has a leaf for it but the record is missing (it was deleted)"),
        }
    }

    /// Checks one stored record (its raw bytes, or `None` when absent) against the
    /// state tree, as every read does: see [`Store::state`].
    pub fn check_record(&self, key: &StateKey, value: Option<&[u8]>) -> Result<(), StoreError> {
        self.check(key, value)
    }

    /// Forgets the tree pages this view has kept. A view that walks a whole chain's
    /// state (replay's comparison) calls it between pages of records, so it keeps at
    /// most one page of records' paths instead of the whole tree; the snapshot, and so
    /// every answer, stays the same.
    pub fn forget_pages(&self) {
        self.pages.borrow_mut().clear();
        self.verified.borrow_mut().clear();
        self.records.borrow_mut().clear();
    }

    /// Records of this chain whose canonical key starts with `prefix`, in key order,
    /// strictly after `after`, at most `limit`: each key with its stored bytes, unchecked.
    pub fn scan_raw(
        &self,
        prefix: &[u8],
        after: Option<&StateKey>,
        limit: usize,
    ) -> Result<Vec<(StateKey, Vec<u8>)>, StoreError> {
        debug_assert!(self.after.is_none(), "scans read the stored state only");
        let mut full = tables::chain_prefix(self.chain);
        full.extend_from_slice(prefix);
        let from = match after {
            Some(k) => {
                let mut from = State::key(&(self.chain, k.clone()));
                from.push(0); // the first key strictly after
                from
            }
            None => full.clone(),
        };
        let mut out = Vec::new();
        let iter = self.snap.iterator_cf(
            self.store.cf(State::NAME),
            IteratorMode::From(&from, Direction::Forward),
        );
        for item in iter {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(StoreError::rocks)?;
            if !k.starts_with(&full) {
                break;
            }
            let key: StateKey = codec::decode(&k[4..]).map_err(|e| StoreError::Corrupt {
                table: State::NAME,
                key: hex_key(&k),
                message: e.to_string(),
            })?;
            out.push((key, v.to_vec()));
        }
        Ok(out)
    }

    /// Like [`ChainView::scan_raw`], with every record decoded and checked like
    /// [`StateRead::get`] checks it.
    pub fn scan(
        &self,
        prefix: &[u8],
        after: Option<&StateKey>,
        limit: usize,
    ) -> Result<Vec<(StateKey, StateValue)>, StoreError> {
        self.scan_raw(prefix, after, limit)?
            .into_iter()
            .map(|(key, bytes)| {
                let corrupt = |message: String| StoreError::Corrupt {
                    table: State::NAME,
                    key: hex_key(&State::key(&(self.chain, key.clone()))),
                    message,
                };
                let value: StateValue = codec::decode(&bytes).map_err(|e| corrupt(e.to_string()))?;
                if !value.matches(&key) {
                    return Err(corrupt("value has the wrong type for its key".into()));
                }
                if self.verify {
                    self.check(&key, Some(&bytes))?;
                }
                Ok((key, value))
            })
            .collect()
    }
}

impl StateRead for ChainView<'_> {
    type Error = StoreError;
    fn is_damage(error: &StoreError) -> bool {
        error.is_damage()
    }
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>, StoreError> {
        if let Some(written) = self.after.as_ref().and_then(|a| a.writes.get(key)) {
            return Ok(Some(written.clone()));
        }
        if let Some(known) = self.records.borrow().get(key) {
            return Ok(known.clone());
        }
        let raw = self.raw::<State>(&(self.chain, key.clone()))?;
        if self.verify {
            self.check(key, raw.as_deref())?;
        }
        let value = match raw {
            None => None,
            Some(bytes) => Some(codec::decode(&bytes).map_err(|e| StoreError::Corrupt {
                table: State::NAME,
                key: hex_key(&State::key(&(self.chain, key.clone()))),
                message: e.to_string(),
            })?),
        };
        self.records.borrow_mut().insert(key.clone(), value.clone());
        Ok(value)
    }
}

/// A chain's state as of an earlier height ([`Store::state_at`]): a snapshot of the
/// current state with each page and record read at its version as of that height.
pub struct StateAt<'a> {
    view: ChainView<'a>,
    height: u64,
    /// Pages read so far, as of `height` (`None`: no page there).
    pages: RefCell<NodeMap<Option<Box<Page>>>>,
}

impl StateAt<'_> {
    /// The height it is the state as of.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// Its state root (the header at this height must commit to it).
    pub fn root(&self) -> Result<Hash32, StoreError> {
        Ok(self
            .node(&NodeKey::on_path(0, &smt::EMPTY))?
            .map(|n| n.hash())
            .unwrap_or(smt::EMPTY))
    }

    /// The versions under `prefix` above `self.height` in `table`, oldest first, each
    /// with its key: what each later block overwrote.
    fn versions(&self, table: &'static str, prefix: Vec<u8>) -> VersionRows<'_> {
        let mut from = prefix.clone();
        from.extend_from_slice(&(self.height + 1).to_be_bytes());
        let mut upper = prefix.clone();
        upper.extend_from_slice(&u64::MAX.to_be_bytes());
        let mut ro = ReadOptions::default();
        ro.set_snapshot(&self.view.snap);
        ro.set_iterate_upper_bound(upper);
        let mut iter = self.view.store.db.raw_iterator_cf_opt(self.view.store.cf(table), ro);
        iter.seek(&from);
        VersionRows {
            iter,
            key_len: prefix.len() + 8,
            started: false,
        }
    }

    /// The first version under `prefix` above `self.height` in `table`: the bytes as of
    /// this height (`Some(None)`: absent then), or `None` when nothing overwrote them
    /// since, so the current bytes are.
    fn version(&self, table: &'static str, prefix: Vec<u8>) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        match self.versions(table, prefix).next() {
            None => Ok(None),
            Some(row) => {
                let (key, value) = row?;
                codec::decode::<Option<Vec<u8>>>(&value)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        table,
                        key: hex_key(&key),
                        message: e.to_string(),
                    })
            }
        }
    }

    /// The record under `key` as of this height.
    pub fn get(&self, key: &StateKey) -> Result<Option<StateValue>, StoreError> {
        let chain = self.view.chain;
        let (table, bytes) = match self.version(StateVersions::NAME, tables::state_version_prefix(chain, key))? {
            Some(old) => (StateVersions::NAME, old),
            None => (State::NAME, self.view.raw::<State>(&(chain, key.clone()))?),
        };
        bytes
            .map(|b| {
                codec::decode(&b).map_err(|e| StoreError::Corrupt {
                    table,
                    key: hex_key(&State::key(&(chain, key.clone()))),
                    message: e.to_string(),
                })
            })
            .transpose()
    }

    /// A proof of `key`'s value as of this height.
    pub fn prove(&self, key: &StateKey) -> Result<smt::StateProof, StoreError> {
        smt::prove(self, &smt::key_hash(&key.to_bytes())).map_err(|e| tree_err(self.view.chain, e))
    }
}

/// The version rows under one prefix above a height ([`StateAt::versions`]), oldest
/// first: each row's key and value.
struct VersionRows<'a> {
    iter: rocksdb::DBRawIteratorWithThreadMode<'a, DB>,
    /// The length of a version row's key under this prefix.
    key_len: usize,
    /// Whether the iterator was read (it starts on the first row).
    started: bool,
}

impl Iterator for VersionRows<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>), StoreError>;
    fn next(&mut self) -> Option<Self::Item> {
        if std::mem::replace(&mut self.started, true) {
            self.iter.next();
        }
        loop {
            match (self.iter.key(), self.iter.value()) {
                (Some(k), Some(v)) if k.len() == self.key_len => return Some(Ok((k.to_vec(), v.to_vec()))),
                // Every key in the range starts with the prefix; one of another length
                // encodes no version row (damage) and is passed over.
                (Some(_), Some(_)) => self.iter.next(),
                _ => return self.iter.status().err().map(|e| Err(StoreError::rocks(e))),
            }
        }
    }
}

impl NodeStore for StateAt<'_> {
    type Error = StoreError;
    fn node(&self, at: &NodeKey) -> Result<Option<Node>, StoreError> {
        let page = pages::page_of(at);
        if let Some(p) = self.pages.borrow().get(&page) {
            return Ok(p.as_ref().and_then(|p| p.node(at)));
        }
        let chain = self.view.chain;
        let versions = self
            .versions(TreeVersions::NAME, tables::tree_version_prefix(chain, &page))
            .map(|row| {
                let (key, value) = row?;
                PageVersion::from_row(&value).map_err(|message| StoreError::Corrupt {
                    table: TreeVersions::NAME,
                    key: hex_key(&key),
                    message,
                })
            });
        let p = pages::page_as_of(versions, || self.view.page(page))?;
        let node = p.as_ref().and_then(|p| p.node(at));
        self.pages.borrow_mut().insert(page, p.map(Box::new));
        Ok(node)
    }
}

impl NodeStore for ChainView<'_> {
    type Error = StoreError;
    fn node(&self, at: &NodeKey) -> Result<Option<Node>, StoreError> {
        let page = pages::page_of(at);
        if let Some(p) = self.pages.borrow().get(&page) {
            return Ok(p.as_ref().and_then(|p| p.node(at)));
        }
        let mut p = self.page(page)?;
        // The page as the block in flight leaves it. (Applying its changes again to a
        // page that already has them, once it is written, changes nothing.)
        if let Some(changes) = self.after.as_ref().and_then(|a| a.pages.get(&page)) {
            p = pages::apply(p, changes);
        }
        let node = p.as_ref().and_then(|p| p.node(at));
        self.pages.borrow_mut().insert(page, p.map(Box::new));
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch store's write that waits for a flush the full disk fails returns the
    /// no-space error. (RocksDB keeps a stalled write waiting while it polls for free
    /// space to recover by itself, which on a disk that stays full is forever: replay
    /// hung on it.) Batches larger than a memtable make nearly every write wait for a
    /// flush, so the disk fills while one waits.
    #[test]
    fn a_scratch_write_stalled_on_a_full_disk_fails_with_the_error() {
        let root = tempfile::tempdir().unwrap();
        let disk = fapiao_testkit::disk::SmallDisk::mount(&root.path().join("disk"), 2);
        let path = disk.dir.join("scratch");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let store = Store::open(
                &path,
                &StoreOptions {
                    scratch: true,
                    bounded_memory: true,
                    block_cache_bytes: 4 << 20,
                    memtable_bytes: 256 << 10,
                    ..StoreOptions::default()
                },
            )
            .unwrap();
            // Incompressible bytes, so each batch takes its size on the disk.
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            let mut bytes = |n: usize| -> Vec<u8> {
                (0..n)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect()
            };
            let mut written = 0u32;
            let result = loop {
                let mut b = WriteBatch::default();
                for i in 0..4u32 {
                    b.put_cf(
                        store.cf(Tree::NAME),
                        [written.to_be_bytes(), i.to_be_bytes()].concat(),
                        bytes(64 << 10),
                    );
                }
                match store.write_synced(b) {
                    Ok(()) if written < 10_000 => written += 1,
                    other => break other,
                }
            };
            let _ = tx.send((result, written));
        });
        let (result, written) = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("a write on the full disk neither finished nor failed in a minute: it hangs");
        let err = result.unwrap_err();
        assert!(err.is_no_space(), "{err}");
        assert!(written > 0, "it failed before the disk was full");
    }
}
