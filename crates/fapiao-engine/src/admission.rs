//! Admission: from bytes to durable pending events.

use crate::{Engine, Shared};
use fapiao_core::event::EventKind;
use fapiao_core::sig::{self, BatchItem};
use fapiao_core::{codec, Event, EventId};
use fapiao_domain::{ErrorCode, StateKey};
use fapiao_store::{ChainView, Store, StoreError};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Where an admitted (or previously admitted) event stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmitStatus {
    /// Durable, waiting for a block.
    Pending,
    /// In a block.
    Committed {
        /// The block height.
        height: u64,
    },
    /// Admitted earlier but dropped when its block was built.
    Rejected {
        /// Stable code.
        code: String,
        /// Why.
        message: String,
    },
}

/// The answer for one event of a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmitOutcome {
    /// The event id.
    pub event_id: EventId,
    /// Its status.
    pub status: AdmitStatus,
    /// Whether the same event had been submitted before (nothing new was stored).
    pub duplicate: bool,
}

/// Why an event was not admitted. Nothing is stored for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// The bytes are not a canonical event.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// Larger than the limit.
    #[error("event is {len} bytes, the limit is {limit}")]
    TooLarge {
        /// Size.
        len: usize,
        /// Limit.
        limit: usize,
    },
    /// Too many events in one submission.
    #[error("a submission holds at most {limit} events, this one {len}")]
    BatchTooLarge {
        /// Count.
        len: usize,
        /// Limit.
        limit: usize,
    },
    /// The signature is invalid.
    #[error("signature invalid: {0}")]
    BadSignature(String),
    /// The author may not sign this kind on this chain.
    #[error("key {author} is not authorised to sign {kind} on this chain")]
    Unauthorized {
        /// The author key.
        author: String,
        /// The kind.
        kind: &'static str,
    },
    /// A business id is already used by a different event.
    #[error("{} {id} is already used by event {original}", kind.field())]
    Conflict {
        /// Which kind of id.
        kind: BusinessIdKind,
        /// The id.
        id: String,
        /// The event that holds it.
        original: EventId,
    },
    /// Too many events are waiting for a block.
    #[error("the node has {pending} events waiting for a block; retry shortly")]
    Busy {
        /// Pending count.
        pending: usize,
    },
    /// The node is stopping or failed.
    #[error("the node is unavailable: {0}")]
    Unavailable(String),
    /// The operator put the node in maintenance: writes wait, reads and verification
    /// go on.
    #[error("the node is in maintenance: writes are paused (reads and verification keep working); retry later")]
    Maintenance,
    /// Free disk is below the reserve: nothing is stored until space is freed (reads and
    /// verification go on; admission resumes by itself).
    #[error("storage full: {free} bytes free, below the {reserve}-byte reserve; writes resume when space is freed")]
    StorageFull {
        /// Free bytes.
        free: u64,
        /// The reserve.
        reserve: u64,
    },
    /// Block production is held for good: a peer holds blocks of this node's own chain
    /// above its head (a ledger restored from an older backup). Events stay with their
    /// clients until the operator has repaired the ledger.
    #[error("this node cannot record events now: {0}")]
    OwnChainBehind(String),
    /// This node's member owns no chain (a witness that is not a merchant): it records
    /// no event.
    #[error("this node's member is a witness that owns no chain: send events to the merchant's own node")]
    NoChain,
    /// The event breaks a bound or a field rule that needs no state (an amount above the
    /// maximum, an id too long, ...): the same check execution would make.
    #[error("{0}")]
    Invalid(fapiao_domain::Rejection),
}

impl AdmitError {
    /// A stable code for APIs.
    pub fn code(&self) -> ErrorCode {
        match self {
            AdmitError::Malformed(_) => ErrorCode::MalformedEvent,
            AdmitError::TooLarge { .. } => ErrorCode::EventTooLarge,
            AdmitError::BatchTooLarge { .. } => ErrorCode::BatchTooLarge,
            AdmitError::BadSignature(_) => ErrorCode::BadSignature,
            AdmitError::Unauthorized { .. } => ErrorCode::UnauthorizedKey,
            AdmitError::Conflict { kind, .. } => kind.code(),
            AdmitError::Busy { .. } => ErrorCode::Busy,
            AdmitError::Unavailable(_) => ErrorCode::Unavailable,
            AdmitError::Maintenance => ErrorCode::Maintenance,
            AdmitError::StorageFull { .. } => ErrorCode::StorageFull,
            AdmitError::OwnChainBehind(_) => ErrorCode::OwnChainBehind,
            AdmitError::NoChain => ErrorCode::NoChain,
            AdmitError::Invalid(r) => r.code(),
        }
    }

    /// The offending field, if one.
    pub fn field(&self) -> Option<String> {
        match self {
            AdmitError::BadSignature(_) => Some("signature".into()),
            AdmitError::Unauthorized { .. } => Some("author".into()),
            AdmitError::Conflict { kind, .. } => Some(kind.field().into()),
            AdmitError::Invalid(r) => r.field(),
            _ => None,
        }
    }
}

/// The kinds of business id that are unique per chain.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BusinessIdKind {
    /// `payment_id`.
    Payment,
    /// `refund_id`.
    Refund,
    /// `request_id` (invoice and red-letter requests share it).
    Request,
    /// `deposit_id`.
    Deposit,
}

impl BusinessIdKind {
    /// The event field that carries it.
    pub fn field(self) -> &'static str {
        match self {
            BusinessIdKind::Payment => "payment_id",
            BusinessIdKind::Refund => "refund_id",
            BusinessIdKind::Request => "request_id",
            BusinessIdKind::Deposit => "deposit_id",
        }
    }

    /// The API code of a conflict on it.
    pub fn code(self) -> ErrorCode {
        match self {
            BusinessIdKind::Payment => ErrorCode::DuplicatePaymentId,
            BusinessIdKind::Refund => ErrorCode::DuplicateRefundId,
            BusinessIdKind::Request => ErrorCode::DuplicateRequestId,
            BusinessIdKind::Deposit => ErrorCode::DuplicateDepositId,
        }
    }
}

/// A business id an event claims (unique per chain).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) enum BusinessId {
    Payment(String),
    Refund(String),
    Request(String),
    Deposit(String),
}

impl BusinessId {
    fn of(kind: &EventKind) -> Option<BusinessId> {
        match kind {
            EventKind::PaymentRecorded(p) => Some(BusinessId::Payment(p.payment_id.clone())),
            EventKind::PaymentRefunded(r) => Some(BusinessId::Refund(r.refund_id.clone())),
            EventKind::InvoiceRequested(r) => Some(BusinessId::Request(r.request_id.clone())),
            EventKind::InvoiceRedLetterRequested(r) => Some(BusinessId::Request(r.request_id.clone())),
            EventKind::FeeDeposited(d) => Some(BusinessId::Deposit(d.deposit_id.clone())),
            _ => None,
        }
    }

    fn kind(&self) -> BusinessIdKind {
        match self {
            BusinessId::Payment(_) => BusinessIdKind::Payment,
            BusinessId::Refund(_) => BusinessIdKind::Refund,
            BusinessId::Request(_) => BusinessIdKind::Request,
            BusinessId::Deposit(_) => BusinessIdKind::Deposit,
        }
    }

    fn id(&self) -> &str {
        match self {
            BusinessId::Payment(s) | BusinessId::Refund(s) | BusinessId::Request(s) | BusinessId::Deposit(s) => s,
        }
    }
}

/// The in-memory mirror of the pending table.
pub(crate) struct PendingSet {
    pub(crate) by_seq: BTreeMap<u64, (EventId, Event)>,
    pub(crate) ids: HashMap<EventId, u64>,
    business: HashMap<BusinessId, EventId>,
    next_seq: u64,
    /// When the oldest pending event was admitted (for the block interval).
    pub(crate) oldest: Option<Instant>,
}

impl PendingSet {
    pub(crate) fn load(store: &Store) -> Result<PendingSet, StoreError> {
        let mut p = PendingSet {
            by_seq: BTreeMap::new(),
            ids: HashMap::new(),
            business: HashMap::new(),
            next_seq: 1,
            oldest: None,
        };
        for (seq, e) in store.pending()? {
            p.next_seq = p.next_seq.max(seq + 1);
            p.insert(seq, e.id(), e);
        }
        if !p.by_seq.is_empty() {
            p.oldest = Some(Instant::now());
        }
        Ok(p)
    }

    fn insert(&mut self, seq: u64, id: EventId, e: Event) {
        if let Some(b) = BusinessId::of(&e.body.kind) {
            self.business.insert(b, id);
        }
        self.ids.insert(id, seq);
        self.by_seq.insert(seq, (id, e));
    }

    pub(crate) fn remove(&mut self, seq: u64) {
        if let Some((id, e)) = self.by_seq.remove(&seq) {
            self.ids.remove(&id);
            if let Some(b) = BusinessId::of(&e.body.kind) {
                if self.business.get(&b) == Some(&id) {
                    self.business.remove(&b);
                }
            }
        }
        if self.by_seq.is_empty() {
            self.oldest = None;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_seq.len()
    }
}

pub(crate) enum Job {
    Admit {
        events: Vec<(EventId, Event)>,
        reply: tokio::sync::oneshot::Sender<Vec<Result<AdmitOutcome, AdmitError>>>,
    },
    Stop,
}

impl Engine {
    /// Refuses a submission of `len` events as a whole, before any decoding: no chain,
    /// maintenance, a full disk, a held chain, too many events, or a full pending set.
    fn refuse_at_door(&self, len: usize) -> Result<(), AdmitError> {
        let cfg = &self.shared.config;
        if !self.shared.produces {
            return Err(AdmitError::NoChain);
        }
        if self.maintenance() {
            return Err(AdmitError::Maintenance);
        }
        if let Some((free, reserve)) = self.storage_full() {
            return Err(AdmitError::StorageFull { free, reserve });
        }
        if let Some(hold) = self.production_hold().filter(|h| h.refuse_writes) {
            return Err(AdmitError::OwnChainBehind(hold.reason));
        }
        if len > cfg.batch_events_max {
            return Err(AdmitError::BatchTooLarge {
                len,
                limit: cfg.batch_events_max,
            });
        }
        // A full pending set refuses here, before decoding and signature checks: clients
        // retrying against a node that is behind must not cost it a signature check per
        // event per retry (the per-event check still applies when a submission only
        // partly fits).
        let waiting = self.shared.pending.lock().unwrap_or_else(|p| p.into_inner()).len();
        if waiting >= cfg.pending_max {
            return Err(AdmitError::Busy { pending: waiting });
        }
        Ok(())
    }

    /// Admits a submission of encoded events. Each event gets its own answer; the
    /// answers are given only once every admitted event is durable.
    pub async fn admit(&self, encoded: Vec<Vec<u8>>) -> Result<Vec<Result<AdmitOutcome, AdmitError>>, AdmitError> {
        self.refuse_at_door(encoded.len())?;
        let shared = self.shared.clone();
        // Decoding and signature checks are CPU work: off the async threads, batched,
        // and spread over all cores.
        let checked = tokio::task::spawn_blocking(move || check_envelopes(&shared, encoded))
            .await
            .map_err(|_| AdmitError::Unavailable("admission check failed".into()))?;
        let mut answers: Vec<Option<Result<AdmitOutcome, AdmitError>>> = Vec::with_capacity(checked.len());
        let mut to_write = Vec::new();
        let mut slots = Vec::new();
        for (i, c) in checked.into_iter().enumerate() {
            match c {
                Ok((id, e)) => {
                    answers.push(None);
                    slots.push(i);
                    to_write.push((id, e));
                }
                Err(err) => answers.push(Some(Err(err))),
            }
        }
        if !to_write.is_empty() {
            if self.shared.stopping.load(Ordering::SeqCst) || self.failed() {
                return Err(AdmitError::Unavailable("the node is stopping".into()));
            }
            let (reply, rx) = tokio::sync::oneshot::channel();
            self.admit_tx
                .send(Job::Admit {
                    events: to_write,
                    reply,
                })
                .await
                .map_err(|_| AdmitError::Unavailable("the admission writer stopped".into()))?;
            let written = rx
                .await
                .map_err(|_| AdmitError::Unavailable("the admission writer stopped".into()))?;
            for (slot, answer) in slots.into_iter().zip(written) {
                answers[slot] = Some(answer);
            }
        }
        Ok(answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(AdmitError::Unavailable("no answer".into()))))
            .collect())
    }

    pub(crate) fn stop_writer(&self) {
        for _ in 0..100 {
            match self.admit_tx.try_send(Job::Stop) {
                Ok(()) | Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return,
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
            }
        }
    }
}

/// Decode, size, network, chain, authorisation and signatures, per event.
// Long: the admission checks in their documented order (API.md), each refusing with its own code.
fn check_envelopes(shared: &Shared, encoded: Vec<Vec<u8>>) -> Vec<Result<(EventId, Event), AdmitError>> {
    let limit = shared.config.event_bytes_max;
    let mut out: Vec<Result<(EventId, Event), AdmitError>> = encoded
        .par_iter()
        .map(|bytes| {
            if bytes.len() > limit {
                return Err(AdmitError::TooLarge {
                    len: bytes.len(),
                    limit,
                });
            }
            let e: Event = codec::decode_limited(bytes, limit).map_err(|e| AdmitError::Malformed(e.to_string()))?;
            fapiao_domain::check_envelope(shared.network, shared.chain, &e.body).map_err(AdmitError::Invalid)?;
            Ok((e.id(), e))
        })
        .collect();
    // Signatures in batches on all cores; a failed batch names its bad members.
    // Each decoded event's index in `out` beside its batch item, so a bad item names
    // its event.
    let (ok, items): (Vec<usize>, Vec<BatchItem<'_>>) = out
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let (id, e) = r.as_ref().ok()?;
            Some((
                i,
                BatchItem {
                    key: &e.body.author,
                    digest: &id.0,
                    signature: &e.signature,
                },
            ))
        })
        .unzip();
    let bad: Vec<(usize, String)> = sig::verify_batches(&items, sig::Cores::All)
        .into_iter()
        .map(|(j, e)| (ok[j], e.to_string()))
        .collect();
    shared
        .metrics
        .signatures_verified
        .fetch_add(ok.len() as u64, Ordering::Relaxed);
    for (i, msg) in bad {
        out[i] = Err(AdmitError::BadSignature(msg));
    }
    // Authorisation against the committed state, from one snapshot for the whole
    // submission: the records its events share (the key of the client that signed them
    // all) are read and checked against the state tree once, not once per event.
    let epochs = shared.epochs();
    let ctx = fapiao_domain::ChainContext::new(&shared.genesis, epochs.latest(), shared.chain);
    let view = shared.store.state(shared.chain);
    for r in out.iter_mut() {
        if let Ok((_, e)) = r {
            if let Err(err) = authorized(ctx.as_ref(), &view, e) {
                *r = Err(err);
            }
        }
    }
    out
}

/// Who may sign it (the domain's rule, against the committed state `view`, under the
/// chain's context `ctx`, none for a chain of no member), then the event's own bounds:
/// both exactly as execution will check them, so a client hears at once.
fn authorized(
    ctx: Option<&fapiao_domain::ChainContext<'_>>,
    view: &ChainView<'_>,
    e: &Event,
) -> Result<(), AdmitError> {
    let Some(ctx) = ctx else {
        return Err(AdmitError::Unauthorized {
            author: e.body.author.to_hex(),
            kind: e.body.kind.name(),
        });
    };
    let overlay = fapiao_domain::Overlay::new(view);
    match fapiao_domain::authorize(ctx, &overlay, &e.body.author, &e.body.kind) {
        Ok(Ok(_)) => {}
        Ok(Err(fapiao_domain::Rejection::Unauthorized { author, kind })) => {
            return Err(AdmitError::Unauthorized {
                author: author.to_hex(),
                kind,
            })
        }
        Ok(Err(r)) => return Err(AdmitError::Invalid(r)),
        Err(err) => return Err(AdmitError::Unavailable(err.to_string())),
    }
    fapiao_domain::check_event(&e.body.kind).map_err(AdmitError::Invalid)
}

/// Most queued submissions one admission group takes: one synced write makes them all
/// durable, and a bounded group bounds how long the first of them waits for its answer.
const ADMISSION_GROUP_JOBS_MAX: usize = 256;

/// The admission writer: one thread, so dedupe and sequence numbers are serial; it
/// takes every queued submission at once and makes them durable with one synced write
/// (group commit), then answers.
pub(crate) fn writer_loop(shared: Arc<Shared>, mut rx: tokio::sync::mpsc::Receiver<Job>) {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loop {
        let Some(first) = rx.blocking_recv() else { return };
        let mut jobs = vec![first];
        while jobs.len() < ADMISSION_GROUP_JOBS_MAX {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let mut stop = false;
        let mut work = Vec::new();
        for j in jobs {
            match j {
                Job::Stop => stop = true,
                Job::Admit { events, reply } => work.push((events, reply)),
            }
        }
        admit_group(&shared, work);
        if stop || shared.stopping.load(Ordering::SeqCst) {
            return;
        }
    }));
    if result.is_err() {
        tracing::error!("admission writer panicked; the node must stop");
        shared.metrics.thread_failures.fetch_add(1, Ordering::Relaxed);
    }
}

#[allow(clippy::type_complexity)]
// Long: one admission group: dedupe across the group and the store, one synced write, then every answer; the steps
// share the group's pending writes.
fn admit_group(
    shared: &Shared,
    work: Vec<(
        Vec<(EventId, Event)>,
        tokio::sync::oneshot::Sender<Vec<Result<AdmitOutcome, AdmitError>>>,
    )>,
) {
    let started = Instant::now();
    let mut pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
    let mut answers: Vec<Vec<Result<AdmitOutcome, AdmitError>>> = Vec::with_capacity(work.len());
    let mut new: Vec<(u64, EventId, Event)> = Vec::new();
    // The ids in `new`, so a duplicate within the group is found in constant time.
    let mut new_ids: HashSet<EventId> = HashSet::new();
    let mut claimed: HashMap<BusinessId, EventId> = HashMap::new();
    let mut next = pending.next_seq;
    for (events, _) in &work {
        let mut a = Vec::with_capacity(events.len());
        for (id, e) in events {
            let r = classify(shared, &pending, &claimed, &new_ids, *id, e);
            match r {
                Ok(None) => {
                    if pending.len() + new.len() >= shared.config.pending_max {
                        a.push(Err(AdmitError::Busy { pending: pending.len() }));
                        continue;
                    }
                    if let Some(b) = BusinessId::of(&e.body.kind) {
                        claimed.insert(b, *id);
                    }
                    new.push((next, *id, e.clone()));
                    new_ids.insert(*id);
                    next += 1;
                    a.push(Ok(AdmitOutcome {
                        event_id: *id,
                        status: AdmitStatus::Pending,
                        duplicate: false,
                    }));
                }
                Ok(Some(outcome)) => a.push(Ok(outcome)),
                Err(err) => a.push(Err(err)),
            }
        }
        answers.push(a);
    }
    if !new.is_empty() {
        let refs: Vec<(u64, &Event)> = new.iter().map(|(s, _, e)| (*s, e)).collect();
        if let Err(err) = shared.store.add_pending(&refs) {
            tracing::error!(error = %err, "pending write failed; nothing in this group was acknowledged");
            let msg = err.to_string();
            let no_space = err.is_no_space();
            for (a, (_, reply)) in answers.into_iter().zip(work) {
                let failed = a
                    .into_iter()
                    .map(|r| match r {
                        Ok(o) if o.status == AdmitStatus::Pending && !o.duplicate => Err(if no_space {
                            AdmitError::StorageFull {
                                free: 0,
                                reserve: shared.config.disk_reserve_bytes,
                            }
                        } else {
                            AdmitError::Unavailable(msg.clone())
                        }),
                        other => other,
                    })
                    .collect();
                let _ = reply.send(failed);
            }
            return;
        }
        pending.next_seq = next;
        if pending.oldest.is_none() {
            pending.oldest = Some(Instant::now());
        }
        let n = new.len() as u64;
        for (seq, id, e) in new {
            pending.insert(seq, id, e);
        }
        shared.metrics.events_admitted.fetch_add(n, Ordering::Relaxed);
        shared.metrics.pending.store(pending.len() as u64, Ordering::Relaxed);
        shared.metrics.admission_groups.fetch_add(1, Ordering::Relaxed);
        shared.wake.notify_all();
    }
    drop(pending);
    shared
        .metrics
        .admission_micros
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    for (a, (_, reply)) in answers.into_iter().zip(work) {
        let _ = reply.send(a);
    }
}

/// `Ok(None)`: new. `Ok(Some(..))`: a duplicate of a known event. `Err`: a conflict.
fn classify(
    shared: &Shared,
    pending: &PendingSet,
    claimed: &HashMap<BusinessId, EventId>,
    new_ids: &HashSet<EventId>,
    id: EventId,
    e: &Event,
) -> Result<Option<AdmitOutcome>, AdmitError> {
    let dup = |status| {
        Ok(Some(AdmitOutcome {
            event_id: id,
            status,
            duplicate: true,
        }))
    };
    // Pending first, then the store: an event leaves pending only after its block is
    // committed, so one of the two always sees it.
    if pending.ids.contains_key(&id) || new_ids.contains(&id) {
        shared.metrics.events_duplicate.fetch_add(1, Ordering::Relaxed);
        return dup(AdmitStatus::Pending);
    }
    let unavailable = |err: StoreError| AdmitError::Unavailable(err.to_string());
    if let Some(loc) = shared.store.locate(&id).map_err(unavailable)? {
        shared.metrics.events_duplicate.fetch_add(1, Ordering::Relaxed);
        return dup(AdmitStatus::Committed { height: loc.height });
    }
    if let Some(r) = shared.store.rejected(&id).map_err(unavailable)? {
        shared.metrics.events_duplicate.fetch_add(1, Ordering::Relaxed);
        return dup(AdmitStatus::Rejected {
            code: r.code,
            message: r.message,
        });
    }
    let Some(b) = BusinessId::of(&e.body.kind) else {
        return Ok(None);
    };
    let conflict = |original: EventId| AdmitError::Conflict {
        kind: b.kind(),
        id: b.id().to_string(),
        original,
    };
    if let Some(other) = pending.business.get(&b).or_else(|| claimed.get(&b)) {
        return Err(conflict(*other));
    }
    match committed_holder(shared, &b).map_err(unavailable)? {
        None => Ok(None),
        Some(original) => Err(conflict(original)),
    }
}

/// The event whose committed state record holds business id `b`, if one does.
///
/// Most ids are new, so the record is first looked up without its check against the
/// state tree (a walk of the tree from its root, hashing each node, on a view of its
/// own: most of admission's time). Only a record found is read again, checked, before
/// its event is named. An id whose record was deleted on disk is admitted, and refused
/// when its block is built: execution reads the record checked, finds the tree's leaf
/// without it, and leaves the event out with that reason (`fapiao_chain::build`).
fn committed_holder(shared: &Shared, b: &BusinessId) -> Result<Option<EventId>, StoreError> {
    use fapiao_domain::StateRead;
    use fapiao_domain::StateValue as V;
    let key = match b {
        BusinessId::Payment(p) => StateKey::Payment(p.clone()),
        BusinessId::Refund(r) => StateKey::Refund(r.clone()),
        BusinessId::Request(r) => StateKey::Request(r.clone()),
        BusinessId::Deposit(d) => StateKey::Deposit(d.clone()),
    };
    if StateRead::get(&shared.store.state_trusted(shared.chain), &key)?.is_none() {
        return Ok(None);
    }
    Ok(match StateRead::get(&shared.store.state(shared.chain), &key)? {
        None => None,
        Some(V::Payment(p)) => Some(p.event),
        Some(V::Refund(r)) => Some(r.event),
        Some(V::Request(r)) => Some(r.event),
        Some(V::Deposit(d)) => Some(d.event),
        // The store checks a value's variant against its key when it reads it, so this
        // is a broken invariant, not a corrupt disk.
        Some(other) => unreachable!("state value {other:?} under key {key:?}"),
    })
}
