//! Replay: rebuild every chain's state from the block log, checking every hash link,
//! events root, signature, certificate and state root, and re-executing every block
//! (the derived events must come out identical).

use crate::pages::PageVersion;
use crate::tables::{Table, TreeVersions};
use crate::{BlockCommit, PreparedState, RawRow, Store, StoreError};
use fapiao_chain::validate::{self, Invalid, Signatures};
use fapiao_core::event::{DerivedKind, EventKind};
use fapiao_core::sig::Cores;
use fapiao_core::{Block, BlockHash, Entry, Epochs, Genesis, Hash32, MemberCode};
use fapiao_domain::catalogue;
use fapiao_domain::state::{InvoiceRecord, StateKey, StateValue};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What to check beyond the always-on checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayOptions {
    /// Verify every event signature (batched, on all cores).
    pub verify_signatures: bool,
}

/// One thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// The chain.
    pub chain: MemberCode,
    /// The block height (0 when not about one block).
    pub height: u64,
    /// A short kind (`parent_link`, `events_root`, `signature`, ...).
    pub kind: &'static str,
    /// Specifics.
    pub detail: String,
}

/// Counts over the replayed ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Blocks replayed.
    pub blocks: u64,
    /// Entries (input and derived).
    pub entries: u64,
    /// Input events.
    pub events: u64,
    /// Signatures verified.
    pub signatures_verified: u64,
    /// Payments recorded.
    pub payments: u64,
    /// Sum paid, fen (`i128`: a whole ledger of amounts at the bound can pass `i64`).
    pub paid_fen: i128,
    /// Refunds.
    pub refunds: u64,
    /// Sum refunded, fen.
    pub refunded_fen: i128,
    /// Payments reversed.
    pub payment_reversals: u64,
    /// Invoices issued.
    pub invoices_issued: u64,
    /// Red-letter invoices.
    pub red_letters: u64,
    /// Claims recorded.
    pub claims: u64,
    /// Claims refused (locks, unlocks, closings and bookings).
    pub claims_refused: u64,
    /// The buyer's side by what happened: `unlocked`, `closed`, `booked`, a form's new
    /// state (`form_waiting_for_buyer`, `form_confirmed`, ...), `form_refused`.
    pub buyer_actions: BTreeMap<&'static str, u64>,
    /// Failures by reason code.
    pub failures: BTreeMap<&'static str, u64>,
    /// Final invoice status counts: `issued`, `partially_reversed`, `reversed`, `claimed`
    /// (locked), `reimbursed` (claim closed), `booked`.
    pub invoices_by_status: BTreeMap<&'static str, u64>,
}

/// Per-chain outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// The chain.
    pub chain: MemberCode,
    /// Blocks replayed (the chain stops at the first anomaly that breaks the chain).
    pub height: u64,
    /// Head height in the source.
    pub source_height: u64,
    /// The replayed state root.
    pub state_root: Hash32,
    /// Whether it equals the live (source) state root.
    pub matches_live_state: bool,
    /// Blocks with a valid certificate.
    pub certified: u64,
}

/// The replay report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Per chain.
    pub chains: Vec<ChainReport>,
    /// Counts.
    pub counts: Counts,
    /// Every anomaly, with chain and height.
    pub anomalies: Vec<Anomaly>,
}

impl ReplayReport {
    /// No anomaly, and every chain replayed to its head with the live state root.
    pub fn is_clean(&self) -> bool {
        self.anomalies.is_empty()
            && self
                .chains
                .iter()
                .all(|c| c.matches_live_state && c.height == c.source_height)
    }
}

/// A block handed to replay's writer thread, with the state it leaves and its
/// certificate when that checked out.
struct InFlight {
    block: Block,
    state: Arc<PreparedState>,
    certificate: Option<fapiao_core::Certificate>,
}

/// Replays every chain of `source` into `target` (an empty store, or the same store
/// after `clear_derived`). `progress` is called after each block with the number of
/// blocks done.
// Long: one pass over every block in order; its steps share the per-chain cursors and the anomaly list, and
// splitting them would pass those around between every step.
pub fn replay(
    source: &Store,
    target: &Store,
    genesis: &Genesis,
    options: ReplayOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<ReplayReport, StoreError> {
    let network = genesis.network_id();
    let mut report = ReplayReport::default();
    // Every epoch first, from the admin chain's certified blocks, so each block below is
    // checked against its own epoch's configuration.
    let (epochs, _, _) = fapiao_chain::disk::epochs(source, genesis)?;
    let heads = chain_heights(source, &epochs)?;
    let live_roots: BTreeMap<MemberCode, Hash32> = heads
        .iter()
        .map(|(c, _)| source.state_root(*c).map(|r| (*c, r)))
        .collect::<Result<_, _>>()?;
    let mut done = 0u64;
    for (chain, head_height) in heads {
        let mut found: Vec<Anomaly> = Vec::new();
        let mut anomaly = |height: u64, kind: &'static str, detail: String| {
            found.push(Anomaly {
                chain,
                height,
                kind,
                detail,
            });
        };
        if epochs.first_epoch(chain).is_none() {
            anomaly(
                0,
                "unknown_chain",
                format!("chain {chain} is no chain of any certified epoch"),
            );
            report.anomalies.extend(found);
            continue;
        }
        // A target that keeps no days of history keeps the versions of each chain's last
        // blocks only: it writes only those.
        if target.history_days() == 0 && !std::ptr::eq(source, target) {
            target.version_from(
                chain,
                (head_height + 1).saturating_sub(crate::STATE_VERSIONS_KEPT).max(1),
            )?;
        }
        let mut parent = BlockHash(Hash32::ZERO);
        let mut parent_epoch = 0;
        let mut last_time = None;
        let mut height = 0;
        let mut certified = 0;
        // Blocks are committed on a second thread: block h is read, checked and
        // re-executed, on the state as block h-1 leaves it, while h-1 is written, as the
        // block producer does. At most one block is in flight, and it is stored before
        // the chain's result is read.
        std::thread::scope(|scope| -> Result<(), StoreError> {
            let (to_writer, jobs) = std::sync::mpsc::sync_channel::<InFlight>(1);
            let (acks, written) = std::sync::mpsc::channel::<Result<(), StoreError>>();
            scope.spawn(move || {
                for job in jobs {
                    let stored = target.commit_block(&BlockCommit {
                        block: &job.block,
                        state: &job.state,
                        pending_done: &[],
                        rejected: &[],
                        vote: None,
                        certificate: job.certificate.as_ref(),
                    });
                    let failed = stored.is_err();
                    if acks.send(stored).is_err() || failed {
                        break;
                    }
                }
            });
            let mut in_flight: Option<Arc<PreparedState>> = None;
            let mut settle = |in_flight: &mut Option<Arc<PreparedState>>| -> Result<(), StoreError> {
                if in_flight.take().is_some() {
                    written.recv().expect("replay's block writer stopped")?;
                    done += 1;
                    progress(done);
                }
                Ok(())
            };
            for h in 1..=head_height {
                let block = match source.block(chain, h) {
                    Ok(Some(b)) => b,
                    Ok(None) => {
                        anomaly(h, "missing_block", "block is missing".into());
                        break;
                    }
                    Err(e) => {
                        anomaly(h, "unreadable_block", e.to_string());
                        break;
                    }
                };
                let hb = &block.header.body;
                if hb.height != h || hb.chain != chain {
                    anomaly(
                        h,
                        "misplaced_block",
                        format!("stored block says chain {} height {}", hb.chain, hb.height),
                    );
                    break;
                }
                if hb.parent != parent {
                    anomaly(h, "parent_link", "parent hash is not the previous block's hash".into());
                    break;
                }
                if let Err(e) = block.header.verify(&epochs, &network) {
                    anomaly(h, "header_signature", e.to_string());
                    break;
                }
                if let Some(r) = epochs.set_aside(chain, h, hb.epoch) {
                    anomaly(
                    h,
                    "set_aside",
                    format!(
                        "made in epoch {} above height {}, which the reset of epoch {} kept; start the node to set it aside",
                        hb.epoch, r.height, r.epoch
                    ),
                );
                    break;
                }
                if last_time.is_some_and(|t| hb.timestamp < t) {
                    anomaly(h, "timestamp", "block time goes back".into());
                }
                last_time = Some(hb.timestamp);
                if options.verify_signatures {
                    // Every bad one is named; re-execution below then takes them as checked.
                    let inputs = validate::inputs(&block);
                    let bad = validate::bad_event_signatures(&inputs, Cores::All);
                    report.counts.signatures_verified += inputs.len() as u64;
                    for (i, err) in bad {
                        anomaly(h, "event_signature", format!("event {} ({}): {err}", inputs[i].id(), i));
                    }
                }
                // The witnesses' re-execution, over the view the tree update then reuses.
                let view = match &in_flight {
                    Some(before) => target.state_after(chain, before.clone()).trusted(),
                    None => target.state_trusted(chain),
                };
                let Some(config) = epochs.at(hb.epoch) else {
                    anomaly(
                        h,
                        "epoch",
                        format!("epoch {} is not certified on the admin chain", hb.epoch),
                    );
                    break;
                };
                let change = match validate::reexecute(genesis, config, &block, &view, Signatures::Checked, Cores::All)
                {
                    Ok(Ok(change)) => change,
                    Ok(Err(invalid)) => {
                        let kind = match invalid {
                            Invalid::StateRoot { .. } => "state_root",
                            Invalid::Block(_) => "events_root",
                            _ => "re_execution",
                        };
                        anomaly(h, kind, invalid.to_string());
                        break;
                    }
                    Err(e) => return Err(StoreError::from_read(e, chain)),
                };
                let prepared = Arc::new(PreparedState::new(chain, change));
                let cert = source.certificate(chain, h)?;
                let cert = match cert {
                    Some(c) if c.block == block.header.hash() && c.height == h && c.chain == chain => {
                        // Certified by its parent's epoch (the chain's first at height 1).
                        let certifying = match h {
                            1 => epochs.certifying(chain, None),
                            _ => epochs.certifying(chain, Some((h - 1, parent_epoch))),
                        };
                        let by_committee = match c.verify(&epochs, &network) {
                            Ok(()) if c.epoch == certifying => Ok(()),
                            Ok(()) => Err(format!(
                                "certified by epoch {}, not by its parent's epoch {certifying}",
                                c.epoch
                            )),
                            Err(e) => Err(e.to_string()),
                        };
                        match by_committee {
                            Ok(()) => {
                                certified += 1;
                                Some(c)
                            }
                            Err(e) => {
                                anomaly(h, "certificate", e);
                                None
                            }
                        }
                    }
                    Some(_) => {
                        anomaly(h, "certificate", "certificate is for another block".into());
                        None
                    }
                    None => None,
                };
                count(&mut report.counts, &block);
                parent = block.header.hash();
                parent_epoch = hb.epoch;
                height = h;
                settle(&mut in_flight)?;
                in_flight = Some(prepared.clone());
                let job = InFlight {
                    block,
                    state: prepared,
                    certificate: cert,
                };
                to_writer.send(job).expect("replay's block writer stopped");
            }
            settle(&mut in_flight)
        })?;
        report.anomalies.extend(found);
        let state_root = target.state_root(chain)?;
        let live = live_roots.get(&chain).copied().unwrap_or(fapiao_core::smt::EMPTY);
        report.chains.push(ChainReport {
            chain,
            height,
            source_height: head_height,
            state_root,
            // Rebuilding in place compares with the headers (checked per block) instead.
            matches_live_state: state_root == live || std::ptr::eq(source, target),
            certified,
        });
        status_counts(target, chain, &mut report.counts)?;
    }
    if !std::ptr::eq(source, target) {
        // Only chains replayed to their head can be compared row by row; a chain that
        // stopped early already has the anomaly that stopped it.
        let whole: Vec<MemberCode> = report
            .chains
            .iter()
            .filter(|c| c.height == c.source_height)
            .map(|c| c.chain)
            .collect();
        // The replayed store's memtables go to its files first, and their share of its
        // cache with them: read back through the cache, not held beside it while both
        // stores are walked (a tenth of a large replay's peak memory).
        target.done_writing()?;
        compare_derived(source, target, &whole, &mut report.anomalies)?;
    }
    Ok(report)
}

/// Most differences reported one by one per table; the rest are counted in one anomaly.
const DIFFERENCES_PER_TABLE_MAX: usize = 50;

/// What the node serves is what the blocks say: every row of every table derived from
/// blocks (state records, state tree nodes, the entry and business indexes) in the live
/// store `live` is compared with the same row replay derived into `replayed`, and every
/// live state record is re-hashed against the live state tree's leaf. Both sides are
/// walked in key order, one row at a time, so memory stays flat however large the
/// ledger. Rows of chains not in `chains` (not replayed to their head) are skipped, except
/// rows of no merchant at all, which cannot exist.
fn compare_derived(
    live: &Store,
    replayed: &Store,
    chains: &[MemberCode],
    anomalies: &mut Vec<Anomaly>,
) -> Result<(), StoreError> {
    for table in crate::tables::DERIVED {
        let kind = match table {
            "state" => "state_record",
            "tree" => "state_tree",
            _ if crate::tables::VERSIONED.contains(&table) => "state_version",
            _ => "index",
        };
        let mut found = Differences {
            table,
            kind,
            chains,
            listed: 0,
            counted: 0,
        };
        if crate::tables::VERSIONED.contains(&table) {
            compare_versions(live, replayed, &mut found, anomalies)?;
        } else {
            merge_walk(live, replayed, &mut found, anomalies)?;
        }
        if found.counted > found.listed {
            anomalies.push(Anomaly {
                chain: chains
                    .first()
                    .copied()
                    .unwrap_or_else(|| unreachable!("a difference needs a chain")),
                height: 0,
                kind,
                detail: format!(
                    "table {table}: {} more rows differ (the first {} are listed)",
                    found.counted - found.listed,
                    found.listed
                ),
            });
        }
    }
    check_leaves(live, chains, anomalies)
}

/// Each live record against its live leaf, once the row comparison found a state record
/// or tree row that differs.
fn check_leaves(live: &Store, chains: &[MemberCode], anomalies: &mut Vec<Anomaly>) -> Result<(), StoreError> {
    // Each live record against its live leaf: says whether the record or the tree was
    // changed (the row comparison above says that something was). With every live
    // record and tree page equal to the ones replay built together, each record is
    // already its leaf's, and the walk (a path of random page reads per record, most of
    // a large replay's comparison) is skipped.
    if !anomalies
        .iter()
        .any(|a| matches!(a.kind, "state_record" | "state_tree"))
    {
        return Ok(());
    }
    for &chain in chains {
        let view = live.state(chain);
        let mut start = None;
        loop {
            // Memory stays flat: the tree pages of one page of records at a time.
            view.forget_pages();
            let page = view.scan_raw(&[], start.as_ref(), STATE_PAGE_ROWS)?;
            let Some(last) = page.last() else { break };
            start = Some(last.0.clone());
            for (key, bytes) in &page {
                match view.check_record(key, Some(bytes)) {
                    Ok(()) => {}
                    Err(StoreError::Tampered { detail, .. }) => anomalies.push(Anomaly {
                        chain,
                        height: 0,
                        kind: "state_leaf",
                        detail: format!("state record {key:?}: {detail}"),
                    }),
                    Err(StoreError::Inconsistent { detail, .. }) => anomalies.push(Anomaly {
                        chain,
                        height: 0,
                        kind: "state_tree",
                        detail,
                    }),
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

/// The differences found in one table: the first [`DIFFERENCES_PER_TABLE_MAX`] listed as
/// anomalies, the rest counted.
struct Differences<'a> {
    table: &'static str,
    kind: &'static str,
    chains: &'a [MemberCode],
    listed: usize,
    counted: usize,
}

impl Differences<'_> {
    /// A row (`key`, `value` as one store has it) that differs: `what` says how.
    fn push(&mut self, anomalies: &mut Vec<Anomaly>, key: &[u8], value: &[u8], what: &str) {
        let (chain, described) = crate::tables::describe_row(self.table, key, value);
        let chain = match chain {
            Some(c) if self.chains.contains(&c) => c,
            // A chain not replayed to its head.
            Some(_) => return,
            // A row naming no valid chain: reported against the first chain.
            None => match self.chains.first() {
                Some(first) => *first,
                None => return,
            },
        };
        self.counted += 1;
        if self.listed < DIFFERENCES_PER_TABLE_MAX {
            self.listed += 1;
            anomalies.push(Anomaly {
                chain,
                height: 0,
                kind: self.kind,
                detail: format!("table {}, {described}: {what}", self.table),
            });
        }
    }
}

/// Both stores' rows of an unversioned table, walked side by side in key order.
fn merge_walk(
    live: &Store,
    replayed: &Store,
    found: &mut Differences<'_>,
    anomalies: &mut Vec<Anomaly>,
) -> Result<(), StoreError> {
    let mut a = live.raw_rows(found.table).peekable();
    let mut b = replayed.raw_rows(found.table).peekable();
    loop {
        let order = match (a.peek(), b.peek()) {
            (None, None) => return Ok(()),
            (Some(Err(_)), _) => return Err(a.next().and_then(Result::err).unwrap_or(StoreError::ReadOnly)),
            (_, Some(Err(_))) => return Err(b.next().and_then(Result::err).unwrap_or(StoreError::ReadOnly)),
            (Some(Ok(x)), Some(Ok(y))) => x.0.cmp(&y.0),
            (Some(Ok(_)), None) => std::cmp::Ordering::Less,
            (None, Some(Ok(_))) => std::cmp::Ordering::Greater,
        };
        let next = |i: &mut std::iter::Peekable<_>| -> RawRow {
            i.next()
                .and_then(Result::<RawRow, StoreError>::ok)
                .unwrap_or_else(|| unreachable!())
        };
        match order {
            std::cmp::Ordering::Equal => {
                let (k, lv) = next(&mut a);
                let (_, rv) = next(&mut b);
                if lv != rv {
                    found.push(anomalies, &k, &lv, "differs from what replay derives");
                }
            }
            std::cmp::Ordering::Less => {
                let (k, v) = next(&mut a);
                found.push(
                    anomalies,
                    &k,
                    &v,
                    "is in the live store, but replay derives no such row",
                );
            }
            std::cmp::Ordering::Greater => {
                let (k, v) = next(&mut b);
                found.push(anomalies, &k, &v, "is missing from the live store");
            }
        }
    }
}

/// The rows of a versioned table both stores keep, compared. Each store prunes its
/// versions by its own retention, so only a row both keep is compared, and the replayed
/// store keeps the fewer (a scratch store keeps its chains' last 256 blocks; the live
/// store its retention's days too: 16 GB of a ten-million-event ledger, which a walk of
/// both read whole for the few rows it compared). The live side seeks to each replayed
/// row, reading only the blocks that hold one. A replayed row the live store lacks is
/// reported when the live store still keeps its block's versions (its height is at or
/// above the live chain's first versioned height): pruned, it is expected to be gone.
fn compare_versions(
    live: &Store,
    replayed: &Store,
    found: &mut Differences<'_>,
    anomalies: &mut Vec<Anomaly>,
) -> Result<(), StoreError> {
    let mut cursor = live.raw_cursor(found.table);
    let mut kept_from: HashMap<MemberCode, u64> = HashMap::new();
    for row in replayed.raw_rows(found.table) {
        let (key, replayed_value) = row?;
        cursor.seek(&key);
        cursor.status().map_err(StoreError::rocks)?;
        match (cursor.key(), cursor.value()) {
            (Some(k), Some(v)) if k == &key[..] => {
                if v != &replayed_value[..] && !same_page_version(found.table, v, &replayed_value) {
                    found.push(anomalies, &key, v, "differs from what replay derives");
                }
            }
            _ => {
                let Some((chain, height)) = crate::tables::versioned_row_block(found.table, &key) else {
                    continue;
                };
                let from = match kept_from.get(&chain) {
                    Some(f) => *f,
                    None => {
                        let f = live.first_versioned(chain)?;
                        kept_from.insert(chain, f);
                        f
                    }
                };
                if height >= from {
                    found.push(
                        anomalies,
                        &key,
                        &replayed_value,
                        "is missing from the live store, which keeps this block's versions",
                    );
                }
            }
        }
    }
    Ok(())
}

/// Whether `live` and `replayed`, unequal values of the same row of `table`, are
/// versions of a tree page that say the same: a ledger written before deltas keeps the
/// whole page where replay keeps the delta of it (FORMAT.md §10, "Versions").
fn same_page_version(table: &str, live: &[u8], replayed: &[u8]) -> bool {
    table == TreeVersions::NAME
        && match (PageVersion::from_row(live), PageVersion::from_row(replayed)) {
            (Ok(a), Ok(b)) => a.agrees_with(&b),
            _ => false,
        }
}

/// Records read per page when walking one chain's state.
const STATE_PAGE_ROWS: usize = 1024;

/// Every chain of any epoch with blocks, with the height of its last stored header (read
/// from the headers, so it works after the heads were cleared for a rebuild).
pub fn chain_heights(store: &Store, epochs: &Epochs) -> Result<Vec<(MemberCode, u64)>, StoreError> {
    let mut out = Vec::new();
    for chain in epochs.every_chain() {
        let prefix = crate::tables::chain_prefix(chain);
        if let Some((_, h)) = store.last::<crate::tables::Headers>(&prefix)? {
            out.push((chain, h.body.height));
        }
    }
    Ok(out)
}

fn count(c: &mut Counts, block: &Block) {
    c.blocks += 1;
    c.entries += block.entries.len() as u64;
    for e in &block.entries {
        match e {
            Entry::Event(ev) => {
                c.events += 1;
                match &ev.body.kind {
                    EventKind::PaymentRecorded(p) => {
                        c.payments += 1;
                        c.paid_fen += i128::from(p.amount.fen());
                    }
                    EventKind::PaymentRefunded(r) => {
                        c.refunds += 1;
                        c.refunded_fen += i128::from(r.amount.fen());
                    }
                    EventKind::PaymentVoided(_) => c.payment_reversals += 1,
                    _ => {}
                }
            }
            Entry::Derived(d) => match &d.kind {
                DerivedKind::InvoiceIssued(_) => c.invoices_issued += 1,
                DerivedKind::InvoiceReversed(_) => c.red_letters += 1,
                DerivedKind::InvoiceFailed(f) => *c.failures.entry(catalogue::info(f.reason).code).or_default() += 1,
                DerivedKind::ClaimRecorded(_) => c.claims += 1,
                DerivedKind::ClaimRefused(_) => c.claims_refused += 1,
                DerivedKind::ClaimUnlocked(_) => *c.buyer_actions.entry("unlocked").or_default() += 1,
                DerivedKind::ClaimClosed(_) => *c.buyer_actions.entry("closed").or_default() += 1,
                DerivedKind::BookingRecorded(_) => *c.buyer_actions.entry("booked").or_default() += 1,
                DerivedKind::RedFormChanged(f) => *c.buyer_actions.entry(form_key(f.state)).or_default() += 1,
                DerivedKind::RedFormRefused(_) => *c.buyer_actions.entry("form_refused").or_default() += 1,
            },
        }
    }
}

fn form_key(s: fapiao_core::event::FormState) -> &'static str {
    use fapiao_core::event::FormState as F;
    match s {
        F::NoConfirmationNeeded => "form_no_confirmation_needed",
        F::WaitingForBuyer => "form_waiting_for_buyer",
        F::WaitingForSeller => "form_waiting_for_seller",
        F::Confirmed => "form_confirmed",
        F::Rejected => "form_rejected",
        F::Withdrawn => "form_withdrawn",
        F::Void => "form_void",
    }
}

fn status_counts(store: &Store, chain: MemberCode, c: &mut Counts) -> Result<(), StoreError> {
    // The invoice records: their keys start with the variant's canonical tag.
    let sample = StateKey::Invoice(fapiao_core::InvoiceNumber::new(0, chain, 0).unwrap_or_else(|| unreachable!()));
    let prefix = &sample.to_bytes()[..4];
    let view = store.state_trusted(chain);
    let mut start: Option<StateKey> = None;
    loop {
        // A page at a time, so memory stays flat however many invoices there are.
        let page = view.scan(prefix, start.as_ref(), STATE_PAGE_ROWS)?;
        let Some((last, _)) = page.last() else { break };
        start = Some(last.clone());
        for (_, v) in page {
            status_count(v, c);
        }
    }
    Ok(())
}

fn status_count(v: StateValue, c: &mut Counts) {
    if let StateValue::Invoice(InvoiceRecord::Blue(b)) = v {
        *c.invoices_by_status.entry(b.status().name()).or_default() += 1;
        match b.claim.as_ref().map(|c| c.closed_at.is_some()) {
            Some(false) => *c.invoices_by_status.entry("claimed").or_default() += 1,
            Some(true) => *c.invoices_by_status.entry("reimbursed").or_default() += 1,
            None => {}
        }
        if b.booking.as_ref().is_some_and(|k| k.status.is_booked()) {
            *c.invoices_by_status.entry("booked").or_default() += 1;
        }
    }
}
