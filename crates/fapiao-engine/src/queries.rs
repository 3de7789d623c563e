//! Reads for the API and the CLI.

use crate::Engine;
use fapiao_core::event::{DerivedKind, FailureReason};
use fapiao_core::{Block, Certificate, Derived, Entry, EventId, Fen, Header, InvoiceNumber, MemberCode, NetworkId};
use fapiao_domain::state::{InvoiceRecord, PaymentInvoicing, PaymentRecord, RequestOutcome, RequestRecord};
use fapiao_domain::{StateKey, StateRead, StateValue};
use fapiao_store::tables::{self, IdxFailure, Table};
use fapiao_store::{failure_index, Head, StoreError};
use std::sync::atomic::Ordering;

/// What recording an event derived (see [`Engine::event_outcome`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventOutcome {
    /// The event's block.
    pub height: u64,
    /// Its index in the block.
    pub index: u32,
    /// Whether the block is certified.
    pub certified: bool,
    /// The derived entries it caused, in block order (none for a payment, for example).
    pub derived: Vec<Derived>,
}

/// One entry of an invoice's history (see [`Engine::invoice_history`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The block.
    pub height: u64,
    /// The index in the block.
    pub index: u32,
    /// The block time.
    pub timestamp: fapiao_core::Timestamp,
    /// Whether the block is certified.
    pub certified: bool,
    /// The entry.
    pub entry: Entry,
}

/// The most history entries one read returns.
pub const HISTORY_PAGE_MAX: usize = 1000;

/// Where an event stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventStatus {
    /// Durable, waiting for a block.
    Pending,
    /// In a block.
    Committed {
        /// Height.
        height: u64,
        /// Index among the block's entries.
        index: u32,
        /// Whether the block has a certificate.
        certified: bool,
    },
    /// Admitted, then dropped at execution.
    Rejected {
        /// Code.
        code: String,
        /// Why.
        message: String,
        /// Field.
        field: Option<String>,
    },
    /// Never seen by this node.
    Unknown,
}

/// A payment with its invoicing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentView {
    /// The payment facts.
    pub record: PaymentRecord,
    /// How much of it is invoiced.
    pub invoicing: PaymentInvoicing,
}

impl PaymentView {
    /// What a new invoice may still draw on it: nothing once voided, and nothing while
    /// refunds have taken it below what its invoices drew (the domain's own rule,
    /// [`PaymentRecord::left_to_invoice`]).
    pub fn invoiceable(&self) -> Fen {
        match self.record.left_to_invoice(&self.invoicing) {
            Some(left) if self.record.voided.is_none() && left.is_positive() => left,
            _ => Fen::ZERO,
        }
    }

    /// A refund after invoicing took the payment below what its invoices drew: one of
    /// them must be red-lettered.
    pub fn needs_red_letter(&self) -> bool {
        self.record
            .left_to_invoice(&self.invoicing)
            .is_some_and(|left| left.is_negative())
    }
}

/// A failed request, for the failures list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRow {
    /// The request.
    pub request_id: String,
    /// Why it failed.
    pub reason: FailureReason,
    /// The field at fault.
    pub field: String,
    /// Specifics.
    pub detail: String,
    /// The request record.
    pub record: RequestRecord,
    /// The invoice its retries ended in, if they did.
    pub resolved_by: Option<(String, InvoiceNumber)>,
}

/// Where a failures listing stopped: the index position of the last row read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureCursor {
    /// The reason's index (see [`FailureReason::index`]).
    pub reason_index: u32,
    /// The request id.
    pub request_id: String,
}

impl FailureCursor {
    /// `REASON_INDEX:REQUEST_ID`, the form the API carries.
    pub fn to_text(&self) -> String {
        format!("{}:{}", self.reason_index, self.request_id)
    }

    /// Parses [`FailureCursor::to_text`].
    pub fn from_text(s: &str) -> Option<FailureCursor> {
        let (r, id) = s.split_once(':')?;
        Some(FailureCursor {
            reason_index: r.parse().ok()?,
            request_id: id.to_string(),
        })
    }
}

/// Most failure index rows one listing reads; the cursor it returns continues from
/// there, so a listing costs the same however many failures a chain holds.
pub const FAILURE_ROWS_SCANNED_MAX: usize = 5000;

/// A configuration change and the certified admin block that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochRecord {
    /// The admin chain height.
    pub height: u64,
    /// The block time.
    pub timestamp: fapiao_core::Timestamp,
    /// The change, with the epoch it started.
    pub change: fapiao_core::Reconfiguration,
}

/// Node status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// Network id.
    pub network: NetworkId,
    /// Network name.
    pub network_name: String,
    /// This node's chain.
    pub chain: MemberCode,
    /// Its head.
    pub head: Option<Head>,
    /// Highest certified height of this chain.
    pub certified_height: u64,
    /// Pending events.
    pub pending: u64,
    /// The newest epoch this node knows.
    pub epoch: u32,
    /// Members in genesis.
    pub members: usize,
    /// Quorum.
    pub quorum: u32,
    /// Replication (peers, heads and lag per chain), when the node has peers.
    pub replication: Option<crate::ReplicationStatus>,
    /// Maintenance mode: writes are refused.
    pub maintenance: bool,
}

impl Engine {
    fn view(&self) -> fapiao_store::ChainView<'_> {
        self.store().state(self.chain())
    }

    fn get_state(&self, key: StateKey) -> Result<Option<StateValue>, StoreError> {
        self.view().get(&key)
    }

    /// An event's status.
    pub fn event_status(&self, id: &EventId) -> Result<EventStatus, StoreError> {
        if self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ids
            .contains_key(id)
        {
            return Ok(EventStatus::Pending);
        }
        if let Some(loc) = self.store().locate(id)? {
            let certified = self.store().certificate(loc.chain, loc.height)?.is_some();
            return Ok(EventStatus::Committed {
                height: loc.height,
                index: loc.index,
                certified,
            });
        }
        if let Some(r) = self.store().rejected(id)? {
            return Ok(EventStatus::Rejected {
                code: r.code,
                message: r.message,
                field: r.field,
            });
        }
        Ok(EventStatus::Unknown)
    }

    /// The equivocation evidence this node holds: one per frozen chain (`None`), then
    /// what chain resets superseded, on record, with the reset's epoch.
    pub fn evidence(&self) -> Result<Vec<(Option<u32>, fapiao_core::Equivocation)>, StoreError> {
        let frozen = self.store().evidence()?.into_iter().map(|e| (None, e));
        let superseded = self
            .store()
            .superseded_evidence()?
            .into_iter()
            .map(|(epoch, e)| (Some(epoch), e));
        Ok(frozen.chain(superseded).collect())
    }

    /// What executing an event of this node's chain produced: the derived entries that
    /// follow it in its block (an invoice issued or its failure, a claim recorded or
    /// refused, a red letter, the automatic re-issues of a fee deposit, ...), in block
    /// order. `None` until the event is in a block,
    /// and for an event of another chain: the author learns the outcome from the node it
    /// submitted to, with no read token, and the event id (unguessable) is the credential.
    pub fn event_outcome(&self, id: &EventId) -> Result<Option<EventOutcome>, StoreError> {
        let Some(loc) = self.store().locate(id)?.filter(|l| l.chain == self.chain()) else {
            return Ok(None);
        };
        let Some(block) = self.store().block(loc.chain, loc.height)? else {
            return Ok(None);
        };
        let certified = self.store().certificate(loc.chain, loc.height)?.is_some();
        // What executing it produced: the derived entries that follow it in its block, up
        // to the next input event. Most are caused by it; the automatic re-issues a fee
        // deposit or a quota change runs are caused by the requests they answer.
        let derived = block
            .entries
            .into_iter()
            .skip(loc.index as usize + 1)
            .map_while(|e| match e {
                Entry::Derived(d) => Some(d),
                Entry::Event(_) => None,
            })
            .collect();
        Ok(Some(EventOutcome {
            height: loc.height,
            index: loc.index,
            certified,
            derived,
        }))
    }

    /// Every entry about invoice `number` on its chain, in ledger order, after position
    /// `after` (height, index), at most `limit` (clamped to [`HISTORY_PAGE_MAX`]): the
    /// request, the issue, red-letter requests, forms and their answers, claims (locks,
    /// refusals, unlocks, closing) and bookings, each with its outcome. An entry read back
    /// from another place than its index row says is [`StoreError::Tampered`].
    pub fn invoice_history(
        &self,
        number: &InvoiceNumber,
        after: Option<(u64, u32)>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let chain = number.member();
        let prefix = tables::IdxInvoiceHistory::key(&(*number, chain, 0, 0));
        let prefix = &prefix[..prefix.len() - 12];
        let start = after.map(|(h, i)| match i.checked_add(1) {
            Some(i) => tables::IdxInvoiceHistory::key(&(*number, chain, h, i)),
            None => tables::IdxInvoiceHistory::key(&(*number, chain, h.saturating_add(1), 0)),
        });
        let rows =
            self.store()
                .scan::<tables::IdxInvoiceHistory>(prefix, start.as_deref(), limit.min(HISTORY_PAGE_MAX))?;
        let mut out = Vec::with_capacity(rows.len());
        let mut header: Option<Header> = None;
        for (_, loc) in rows {
            let tampered = |detail: &str| StoreError::Tampered {
                chain: loc.chain,
                key: format!("history row of {number} at {}.{}", loc.height, loc.index),
                detail: detail.into(),
            };
            let entry = self.store().entry(&loc)?.ok_or_else(|| tampered("no entry is there"))?;
            let about = match &entry {
                Entry::Event(e) => e.body.kind.invoice() == Some(*number),
                Entry::Derived(d) => {
                    let about = d.kind.invoices();
                    about.is_empty() || about.contains(number)
                }
            };
            if loc.chain != chain || !about {
                return Err(tampered("the entry there is not about this invoice"));
            }
            if header.as_ref().is_none_or(|h| h.body.height != loc.height) {
                header = self.store().header(loc.chain, loc.height)?;
            }
            let timestamp = header
                .as_ref()
                .map(|h| h.body.timestamp)
                .ok_or_else(|| tampered("its block header is missing"))?;
            out.push(HistoryEntry {
                height: loc.height,
                index: loc.index,
                timestamp,
                certified: self.store().certificate(loc.chain, loc.height)?.is_some(),
                entry,
            });
        }
        Ok(out)
    }

    /// One payment.
    pub fn payment(&self, id: &str) -> Result<Option<PaymentView>, StoreError> {
        let Some(StateValue::Payment(record)) = self.get_state(StateKey::Payment(id.into()))? else {
            return Ok(None);
        };
        let invoicing = match self.get_state(StateKey::PaymentInvoicing(id.into()))? {
            Some(StateValue::PaymentInvoicing(i)) => i,
            _ => PaymentInvoicing::default(),
        };
        Ok(Some(PaymentView { record, invoicing }))
    }

    /// Payments in key order, after `after`, at most `limit`; each record checked
    /// against the state tree like every state read.
    pub fn payments(&self, after: Option<&str>, limit: usize) -> Result<Vec<PaymentView>, StoreError> {
        let prefix = StateKey::Payment(String::new()).variant_prefix();
        let after = after.map(|a| StateKey::Payment(a.into()));
        let view = self.view();
        let rows = view.scan(&prefix, after.as_ref(), limit)?;
        let mut out = Vec::with_capacity(rows.len());
        for (_, v) in rows {
            if let StateValue::Payment(p) = v {
                let id = p.recorded.payment_id.clone();
                let invoicing = match self.get_state(StateKey::PaymentInvoicing(id))? {
                    Some(StateValue::PaymentInvoicing(i)) => i,
                    _ => PaymentInvoicing::default(),
                };
                out.push(PaymentView { record: p, invoicing });
            }
        }
        Ok(out)
    }

    /// One invoice (blue or red) of this chain.
    pub fn invoice(&self, number: &InvoiceNumber) -> Result<Option<InvoiceRecord>, StoreError> {
        match self.get_state(StateKey::Invoice(*number))? {
            Some(StateValue::Invoice(i)) => Ok(Some(i)),
            _ => Ok(None),
        }
    }

    /// This chain's invoicing quota record (`None`: not under quota) and how many
    /// requests wait for quota.
    pub fn quota(&self) -> Result<(Option<fapiao_domain::state::QuotaRecord>, usize), StoreError> {
        let record = match self.get_state(StateKey::Quota)? {
            Some(StateValue::Quota(q)) => Some(q),
            _ => None,
        };
        let waiting = match self.get_state(StateKey::QuotaBlocked)? {
            Some(StateValue::QuotaBlocked(q)) => q.requests.len(),
            _ => 0,
        };
        Ok((record, waiting))
    }

    /// A red-letter confirmation form of invoice `number`.
    pub fn red_form(
        &self,
        number: &InvoiceNumber,
        form: u32,
    ) -> Result<Option<fapiao_domain::state::RedForm>, StoreError> {
        match self.get_state(StateKey::RedForm(*number, form))? {
            Some(StateValue::RedForm(f)) => Ok(Some(f)),
            _ => Ok(None),
        }
    }

    /// One request.
    pub fn request(&self, id: &str) -> Result<Option<RequestRecord>, StoreError> {
        match self.get_state(StateKey::Request(id.into()))? {
            Some(StateValue::Request(r)) => Ok(Some(r)),
            _ => Ok(None),
        }
    }

    /// A request's whole history: the requests it retried (oldest first), itself, and
    /// the requests that retried it.
    pub fn request_history(&self, id: &str) -> Result<Vec<(String, RequestRecord)>, StoreError> {
        let Some(me) = self.request(id)? else {
            return Ok(Vec::new());
        };
        let mut back = Vec::new();
        let mut cur = me.clone();
        for _ in 0..1000 {
            let prev = match &cur.body {
                fapiao_domain::state::RequestBody::Invoice(r) => r.retry_of.clone(),
                _ => None,
            };
            let Some(p) = prev else { break };
            let Some(rec) = self.request(&p)? else { break };
            back.push((p, rec.clone()));
            cur = rec;
        }
        back.reverse();
        back.push((id.to_string(), me.clone()));
        let mut next = me.retried_by.clone();
        for _ in 0..1000 {
            let Some(n) = next else { break };
            let Some(rec) = self.request(&n)? else { break };
            next = rec.retried_by.clone();
            back.push((n, rec));
        }
        Ok(back)
    }

    /// The failure entry a failure index row points at. It must be this request's
    /// failure under this reason: a rewritten index row is damage, not an answer.
    fn indexed_failure(
        &self,
        loc: &fapiao_store::EntryLoc,
        request_id: &str,
        reason_index: u32,
    ) -> Result<fapiao_core::event::InvoiceFailed, StoreError> {
        match self.store().entry(loc)? {
            Some(Entry::Derived(Derived {
                kind: DerivedKind::InvoiceFailed(f),
                ..
            })) if f.request_id == request_id && failure_index(f.reason) == reason_index => Ok(f),
            _ => Err(StoreError::Tampered {
                chain: self.chain(),
                key: format!("failure index row of request {request_id}"),
                detail: format!(
                    "it points at block {} entry {}, which is not that request's failure",
                    loc.height, loc.index
                ),
            }),
        }
    }

    /// Failed requests, optionally of one reason; `open_only` leaves out those whose
    /// retries ended in an issued invoice, and those a fee deposit issued automatically.
    /// At most `limit` rows, after the cursor `after`; one call reads at most
    /// [`FAILURE_ROWS_SCANNED_MAX`] index rows, and the answer's cursor continues where it
    /// stopped (`None`: nothing more).
    pub fn failures(
        &self,
        reason: Option<FailureReason>,
        open_only: bool,
        limit: usize,
        after: Option<&FailureCursor>,
    ) -> Result<(Vec<FailureRow>, Option<FailureCursor>), StoreError> {
        let chain = self.chain();
        let mut prefix = tables::chain_prefix(chain);
        if let Some(r) = reason {
            prefix.extend_from_slice(&failure_index(r).to_be_bytes());
        }
        let start = after.map(|c| {
            let mut k = tables::IdxFailure::key(&(chain, c.reason_index, c.request_id.clone()));
            k.push(0); // strictly after
            k
        });
        let mut out = Vec::new();
        let rows = self
            .store()
            .scan::<IdxFailure>(&prefix, start.as_deref(), FAILURE_ROWS_SCANNED_MAX)?;
        let scanned_all = rows.len() < FAILURE_ROWS_SCANNED_MAX;
        let mut last = None;
        for (k, loc) in rows {
            if out.len() >= limit {
                return Ok((out, last));
            }
            let (_, reason_index, request_id) = <tables::IdxFailure as tables::Table>::decode(&k)?;
            last = Some(FailureCursor {
                reason_index,
                request_id: request_id.clone(),
            });
            let Some(record) = self.request(&request_id)? else {
                continue;
            };
            let failure = self.indexed_failure(&loc, &request_id, reason_index)?;
            let (reason, field, detail, resolved_by) = match &record.outcome {
                RequestOutcome::Failed { reason, field, detail } => {
                    // A request re-run by a fee deposit may have failed again for another
                    // reason: it is listed under its current one only.
                    if failure_index(*reason) != reason_index {
                        continue;
                    }
                    (*reason, field.clone(), detail.clone(), self.resolution(&record)?)
                }
                // Issued automatically by a fee deposit: the failure as it was recorded,
                // resolved by the request itself.
                RequestOutcome::Issued(number) if record.auto_reissue.is_some() => (
                    failure.reason,
                    failure.field,
                    failure.detail,
                    Some((request_id.clone(), *number)),
                ),
                _ => continue,
            };
            if open_only && resolved_by.is_some() {
                continue;
            }
            out.push(FailureRow {
                request_id,
                reason,
                field,
                detail,
                record,
                resolved_by,
            });
        }
        Ok((out, if scanned_all { None } else { last }))
    }

    fn resolution(&self, r: &RequestRecord) -> Result<Option<(String, InvoiceNumber)>, StoreError> {
        let mut next = r.retried_by.clone();
        for _ in 0..1000 {
            let Some(n) = next else { return Ok(None) };
            let Some(rec) = self.request(&n)? else { return Ok(None) };
            if let RequestOutcome::Issued(num) = rec.outcome {
                return Ok(Some((n, num)));
            }
            next = rec.retried_by;
        }
        Ok(None)
    }

    /// Headers from `from` upward with whether each is certified.
    pub fn blocks(&self, from: u64, limit: usize) -> Result<Vec<(Header, bool)>, StoreError> {
        let chain = self.chain();
        let head = self.store().head(chain)?.map(|h| h.height).unwrap_or(0);
        let mut out = Vec::new();
        let mut h = from.max(1);
        while h <= head && out.len() < limit {
            if let Some(header) = self.store().header(chain, h)? {
                let c = self.store().certificate(chain, h)?.is_some();
                out.push((header, c));
            }
            h += 1;
        }
        Ok(out)
    }

    /// One block of this node's chain with its certificate.
    pub fn block(&self, height: u64) -> Result<Option<(Block, Option<Certificate>)>, StoreError> {
        self.chain_block(self.chain(), height)
    }

    /// One block of any chain this node holds, with its certificate.
    pub fn chain_block(
        &self,
        chain: MemberCode,
        height: u64,
    ) -> Result<Option<(Block, Option<Certificate>)>, StoreError> {
        let Some(b) = self.store().block(chain, height)? else {
            return Ok(None);
        };
        Ok(Some((b, self.store().certificate(chain, height)?)))
    }

    /// Every configuration change in the admin chain's certified blocks, oldest first,
    /// with the block that holds it (empty when the configuration is fixed).
    pub fn epoch_history(&self) -> Result<Vec<EpochRecord>, StoreError> {
        let mut out = Vec::new();
        for b in self.configuration_blocks()? {
            let header = &b.header.header.body;
            for entry in &b.entries {
                if let fapiao_core::Entry::Event(e) = entry {
                    if let fapiao_core::EventKind::ConfigChanged(r) = &e.body.kind {
                        out.push(EpochRecord {
                            height: header.height,
                            timestamp: header.timestamp,
                            change: r.clone(),
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// On the admin's own node, the epoch its chain's newest block (certified or not)
    /// records: a new change must start the one after it. `None` elsewhere.
    pub fn recorded_epoch(&self) -> Result<Option<u32>, StoreError> {
        let latest = self.epochs();
        if !latest.latest().is_admin_chain(self.chain()) {
            return Ok(None);
        }
        match self.store().state(self.chain()).get(&StateKey::Config)? {
            Some(StateValue::Config(c)) => Ok(Some(c.epoch())),
            _ => Ok(Some(0)),
        }
    }

    /// The node's status.
    pub fn status(&self) -> Result<NodeStatus, StoreError> {
        let g = self.genesis();
        let epochs = self.epochs();
        let latest = epochs.latest();
        Ok(NodeStatus {
            network: self.network(),
            network_name: g.network_name().to_string(),
            chain: self.chain(),
            head: self.store().head(self.chain())?,
            certified_height: self.metrics().certified_height.load(Ordering::Relaxed),
            pending: self.metrics().pending.load(Ordering::Relaxed),
            epoch: latest.epoch(),
            members: latest.members().len(),
            quorum: latest.quorum(),
            replication: self.replication(),
            maintenance: self.maintenance(),
        })
    }
}
