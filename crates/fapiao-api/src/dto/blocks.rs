//! Blocks, their entries, equivocation evidence, and the node's status.

use super::*;

/// A block header.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeaderDto {
    /// Chain.
    pub chain: String,
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
    /// Entries as JSON objects (see `entry_json`).
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<Value>,
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
    /// Members in genesis.
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
    /// The frozen chain.
    pub chain: String,
    /// The height signed twice.
    pub height: u64,
    /// The two block hashes.
    pub blocks: Vec<String>,
    /// The evidence in canonical bytes (hex), verifiable offline with the genesis.
    pub canonical_hex: String,
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

pub(super) fn line_json(l: &LineItem) -> Value {
    json!({
        "description": l.description,
        "quantity_thousandths": l.quantity.0,
        "unit_price_fen": l.unit_price.fen(),
        "tax_code": l.tax_code,
        "tax_rate_bp": l.tax_rate.bp(),
        "tax_flag": TaxFlagDto::of(l.tax_rate),
    })
}

pub(super) fn buyer_json(b: &Buyer) -> Value {
    json!({"name": b.name, "tax_id": b.tax_id})
}

/// An entry as JSON, for blocks and exports: `{"id", "type": "event" | "derived", ...}`.
// Long: one arm per entry kind (the typed entry DTO that would replace it is still open in issue 16).
pub fn entry_json(e: &Entry) -> Value {
    match e {
        Entry::Event(ev) => {
            let b = &ev.body;
            let data = match &b.kind {
                EventKind::PaymentRecorded(p) => json!({
                    "payment_id": p.payment_id, "amount_fen": p.amount.fen(), "currency": p.currency.code(),
                    "method": p.method.name(), "terminal_id": p.terminal_id, "external_ref": p.external_ref,
                }),
                EventKind::PaymentRefunded(r) => json!({
                    "payment_id": r.payment_id, "refund_id": r.refund_id, "amount_fen": r.amount.fen(), "reason": r.reason,
                }),
                EventKind::PaymentVoided(r) => json!({"payment_id": r.payment_id, "reason": r.reason}),
                EventKind::InvoiceRequested(r) => json!({
                    "request_id": r.request_id, "invoice_type": r.invoice_type.name(), "buyer": buyer_json(&r.buyer),
                    "lines": r.lines.iter().map(line_json).collect::<Vec<_>>(), "payment_ids": r.payment_ids,
                    "retry_of": r.retry_of,
                }),
                EventKind::InvoiceRedLetterRequested(r) => json!({
                    "request_id": r.request_id, "invoice_number": r.invoice_number.to_string(),
                    "reason": r.reason.name(),
                    "scope": scope_json(&r.scope),
                }),
                EventKind::InvoiceClaimRequested(c) => json!({
                    "invoice_number": c.invoice_number.to_string(), "claim_ref": c.claim_ref,
                }),
                EventKind::FeeDeposited(d) => json!({"deposit_id": d.deposit_id, "amount_fen": d.amount.fen()}),
                EventKind::MerchantPolicySet(p) => json!({
                    "permitted_types": p.permitted_types.iter().map(|t| t.name()).collect::<Vec<_>>(),
                    "max_invoice_total_fen": p.max_invoice_total.fen(),
                }),
                EventKind::ClientKeyAuthorized(a) => json!({
                    "key": a.key.to_hex(), "label": a.label,
                    "payments": a.permissions.payments, "invoices": a.permissions.invoices,
                }),
                EventKind::ClientKeyRevoked(r) => json!({"key": r.key.to_hex()}),
                EventKind::InvoiceClaimUnlocked(a) | EventKind::InvoiceClaimClosed(a) => json!({
                    "invoice_number": a.invoice_number.to_string(), "claim_ref": a.claim_ref,
                }),
                EventKind::InvoiceBookingSet(b) => json!({
                    "invoice_number": b.invoice_number.to_string(), "status": b.status.name(), "code": b.status.code(),
                }),
                EventKind::RedFormStarted(f) => json!({
                    "invoice_number": f.invoice_number.to_string(), "reason": f.reason.name(), "scope": scope_json(&f.scope),
                }),
                EventKind::RedFormAnswered(a) => json!({
                    "invoice_number": a.form.invoice_number.to_string(), "form": a.form.form, "confirm": a.confirm,
                }),
                EventKind::RedFormWithdrawn(f) => {
                    json!({"invoice_number": f.invoice_number.to_string(), "form": f.form})
                }
                EventKind::QuotaChanged(c) => json!({
                    "month": c.month, "action": c.action.name(),
                    "amount_fen": match c.action { QuotaAction::Grant(a) => Some(a.fen()), _ => None },
                }),
            };
            json!({
                "id": ev.id().to_string(), "type": "event", "kind": b.kind.name(), "chain": b.chain.to_string(),
                "author": b.author.to_hex(), "timestamp_ms": b.timestamp.0, "signature": hex::encode(ev.signature.to_bytes()),
                "data": data,
            })
        }
        Entry::Derived(d) => {
            let (kind, data) = match &d.kind {
                DerivedKind::InvoiceIssued(i) => (
                    "invoice_issued",
                    json!({
                        "request_id": i.request_id, "number": i.number.to_string(), "check_code": i.check_code.to_string(),
                        "invoice_type": i.invoice_type.name(), "buyer": buyer_json(&i.buyer),
                        "lines": i.lines.iter().map(|l| serde_json::to_value(LineDto::from(l)).unwrap_or(Value::Null)).collect::<Vec<_>>(),
                        "net_fen": i.net.fen(), "tax_fen": i.tax.fen(), "total_fen": i.total.fen(), "fee_fen": i.fee.fen(),
                        "allocations": i.allocations.iter().map(|a| json!({"payment_id": a.payment_id, "amount_fen": a.amount.fen()})).collect::<Vec<_>>(),
                        "issued_at_ms": i.issued_at.0, "replaces": i.replaces.map(|n| n.to_string()),
                    }),
                ),
                DerivedKind::InvoiceFailed(f) => {
                    let info = catalogue::info(f.reason);
                    (
                        "invoice_failed",
                        json!({"request_id": f.request_id, "reason": info.code, "retryable": info.retryable,
                               "remedy": info.remedy, "field": f.field, "detail": f.detail}),
                    )
                }
                DerivedKind::InvoiceReversed(r) => (
                    "invoice_reversed",
                    json!({
                        "request_id": r.request_id, "original": r.original.to_string(), "red_number": r.red_number.to_string(),
                        "red_check_code": r.red_check_code.to_string(), "reason": r.reason.name(),
                        "net_fen": r.net.fen(), "tax_fen": r.tax.fen(), "total_fen": r.total.fen(), "fully_reversed": r.fully_reversed,
                        "reversed_at_ms": r.reversed_at.0,
                    }),
                ),
                DerivedKind::ClaimRecorded(c) => (
                    "claim_recorded",
                    json!({"invoice_number": c.invoice_number.to_string(), "claimant": c.claimant.to_string(),
                           "claim_ref": c.claim_ref, "claimed_at_ms": c.claimed_at.0}),
                ),
                DerivedKind::ClaimRefused(c) => (
                    "claim_refused",
                    json!({"invoice_number": c.invoice_number.to_string(), "claimant": c.claimant.to_string(),
                    "refusal": match &c.refusal {
                        ClaimRefusal::AlreadyClaimed { claimant, claimed_at } => json!({
                            "reason": "already_claimed",
                            "first_claimant": claimant.to_string(),
                            "first_claimed_at_ms": claimed_at.0,
                        }),
                        ClaimRefusal::Reversed => json!({"reason": "reversed"}),
                        ClaimRefusal::NotFound => json!({"reason": "not_found"}),
                        ClaimRefusal::Closed { closed_at } => json!({"reason": "closed", "closed_at_ms": closed_at.0}),
                        ClaimRefusal::NotLocked => json!({"reason": "not_locked"}),
                        ClaimRefusal::NotLockHolder => json!({"reason": "not_lock_holder"}),
                    }}),
                ),
                DerivedKind::ClaimUnlocked(c) | DerivedKind::ClaimClosed(c) => (
                    if matches!(d.kind, DerivedKind::ClaimUnlocked(_)) {
                        "claim_unlocked"
                    } else {
                        "claim_closed"
                    },
                    json!({"invoice_number": c.invoice_number.to_string(), "claimant": c.claimant.to_string(),
                           "claim_ref": c.claim_ref, "at_ms": c.at.0}),
                ),
                DerivedKind::BookingRecorded(b) => (
                    "booking_recorded",
                    json!({"invoice_number": b.invoice_number.to_string(), "buyer": b.buyer.to_string(),
                           "status": b.status.name(), "code": b.status.code(), "at_ms": b.at.0}),
                ),
                DerivedKind::RedFormChanged(f) => (
                    "red_form_changed",
                    json!({"invoice_number": f.form.invoice_number.to_string(), "form": f.form.form,
                           "state": f.state.name(), "at_ms": f.at.0}),
                ),
                DerivedKind::RedFormRefused(f) => (
                    "red_form_refused",
                    json!({"invoice_number": f.invoice_number.to_string(), "form": f.form,
                    "refusal": match &f.refusal {
                        RedFormRefusal::NotFound => json!({"reason": "not_found"}),
                        RedFormRefusal::NotWaiting(state) => json!({"reason": "not_waiting", "state": state.name()}),
                        RedFormRefusal::WrongSide => json!({"reason": "wrong_side"}),
                        RedFormRefusal::Failed { reason, detail } => {
                            let info = catalogue::info(*reason);
                            json!({"reason": "failed", "code": info.code, "remedy": info.remedy, "detail": detail})
                        }
                    }}),
                ),
            };
            json!({"id": d.id().to_string(), "type": "derived", "kind": kind, "cause": d.cause.to_string(), "data": data})
        }
    }
}

/// A derived entry as the public outcome of its event shows it (`GET
/// /v1/events/{id}/outcome`): as in a block, except that a claim refused because the
/// invoice was claimed before says when, not by whom (the first claimant's identity is
/// that member's business, not the second claimant's).
pub fn outcome_json(d: &fapiao_core::Derived) -> Value {
    let mut v = entry_json(&Entry::Derived(d.clone()));
    if let Some(refusal) = v.pointer_mut("/data/refusal").and_then(Value::as_object_mut) {
        refusal.remove("first_claimant");
    }
    v
}
