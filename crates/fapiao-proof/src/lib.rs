//! Invoice proof bundles and the offline verifier.
//!
//! A bundle lets a verifier who trusts only the genesis file learn that an invoice is
//! genuine, that a quorum of members certified it, and its status as of a certified
//! header: issued, partially or fully red-letter reversed (by which red invoices), or
//! claimed (by whom, when). The bytes are in `docs/FORMAT.md` §12.
//!
//! Architecture invariant: depends on `fapiao-core` alone (no store, no network, no
//! clock: the verifier is given "now"), so it can run anywhere a genesis file can be read.

use fapiao_core::block::BlockError;
use fapiao_core::event::{DerivedKind, EventKind, InvoiceIssued};
use fapiao_core::state::{InvoiceRecord, InvoiceStatus, StateKey, StateValue};
use fapiao_core::{
    codec, merkle, smt, Block, Certificate, Entry, Epochs, Genesis, Header, InvoiceNumber, MemberCode, NetworkId,
};
use serde::{Deserialize, Serialize};

/// The bundle format version this crate writes and reads.
pub const BUNDLE_VERSION: u16 = 2;
/// Largest encoded bundle accepted.
pub const BUNDLE_BYTES_MAX: usize = 1024 * 1024;

/// A block header with the certificate that makes it final.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CertifiedHeader {
    /// The owner-signed header.
    pub header: Header,
    /// A quorum of attestations for it.
    pub certificate: Certificate,
}

/// One entry of a block with its RFC 6962 inclusion proof.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct EntryProof {
    /// Which of the bundle's headers holds the entry.
    pub header: u32,
    /// The entry's index in its block.
    pub index: u64,
    /// The entry.
    pub entry: Entry,
    /// The audit path, leaf to root.
    pub path: Vec<fapiao_core::Hash32>,
}

/// The invoice's current state entry, proven against a certified header's state root.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct StatusProof {
    /// Which of the bundle's headers the proof is against (the latest certified one the
    /// node had when it built the bundle).
    pub header: u32,
    /// The state value at `StateKey::Invoice(number)`.
    pub value: StateValue,
    /// The sparse Merkle proof of that value.
    pub proof: smt::StateProof,
}

/// A certified block of the admin chain, whole: its entries are configuration changes
/// (the admin chain carries nothing else), each starting the next epoch.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ConfigBlock {
    /// Its header and certificate.
    pub header: CertifiedHeader,
    /// Its entries, which hash to the header's events root.
    pub entries: Vec<Entry>,
}

/// A proof bundle, version 2.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Bundle {
    /// [`BUNDLE_VERSION`].
    pub version: u16,
    /// The network (hash of genesis).
    pub network: NetworkId,
    /// The admin chain's certified blocks from height 1, in order, up to the last
    /// configuration change the node knew: from them and genesis alone the verifier
    /// learns every epoch's members and keys, so a certificate of any epoch checks.
    pub configuration: Vec<ConfigBlock>,
    /// The invoice.
    pub number: InvoiceNumber,
    /// Every header referred to, each with its certificate, by increasing height.
    pub headers: Vec<CertifiedHeader>,
    /// The signed invoice request the invoice answers.
    pub request: EntryProof,
    /// The derived `InvoiceIssued` entry.
    pub issued: EntryProof,
    /// The current status.
    pub status: StatusProof,
}

impl Bundle {
    /// The canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::to_bytes(self)
    }

    /// Decodes canonical bytes (bounded; trailing bytes refused).
    pub fn from_bytes(bytes: &[u8]) -> Result<Bundle, Problem> {
        codec::decode_limited(bytes, BUNDLE_BYTES_MAX).map_err(|e| Problem::Decode(e.to_string()))
    }
}

/// What the status proof says.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Status {
    /// Issued and standing in full.
    Issued,
    /// Partially reversed by these red-letter invoices.
    PartiallyReversed(Vec<InvoiceNumber>),
    /// Fully reversed by these red-letter invoices.
    Reversed(Vec<InvoiceNumber>),
}

/// A recorded reimbursement claim.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Claim {
    /// The claimant member.
    pub claimant: MemberCode,
    /// Its reference.
    pub claim_ref: String,
    /// Block time of the claim, ms.
    pub at_ms: u64,
    /// Block time it was closed (reimbursed, final), ms; `None` while it is a lock.
    pub closed_at_ms: Option<u64>,
}

/// A red-letter confirmation form on the invoice, as of the proven block.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Form {
    /// Its number on the invoice.
    pub form: u32,
    /// Who started it.
    pub initiator: fapiao_core::event::Party,
    /// Its state at the proven block's time (a waiting form past its deadline is void).
    pub state: fapiao_core::event::FormState,
    /// Block time it was started, ms.
    pub opened_at_ms: u64,
    /// The red invoice it issued.
    pub red_number: Option<InvoiceNumber>,
}

/// A valid bundle's findings.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Verified {
    /// The invoice as issued.
    pub issued: InvoiceIssued,
    /// The issuing chain.
    pub chain: MemberCode,
    /// Height of the issuing block.
    pub issued_height: u64,
    /// Status.
    pub status: Status,
    /// The reimbursement claim (lock or closed), if any.
    pub claim: Option<Claim>,
    /// The buyer's booking status and its block time (ms), once recorded.
    pub booking: Option<(fapiao_core::event::BookingStatus, u64)>,
    /// The red-letter confirmation forms, in order.
    pub forms: Vec<Form>,
    /// The corrected invoice that replaced this one after its reversal, if any (the
    /// invoice it replaces itself is `issued.replaces`).
    pub replaced_by: Option<InvoiceNumber>,
    /// Height of the header the status is proven against.
    pub as_of_height: u64,
    /// Its block time, ms.
    pub as_of_ms: u64,
}

/// Why a bundle is invalid.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum Problem {
    /// Not decodable.
    #[error("bundle does not decode: {0}")]
    Decode(String),
    /// Another version.
    #[error("bundle version {0} is not supported (expected {BUNDLE_VERSION})")]
    Version(u16),
    /// Another network.
    #[error("bundle is for another network than this genesis")]
    Network,
    /// A header or certificate fails.
    #[error("header {index}: {error}")]
    Header {
        /// Which header.
        index: usize,
        /// Why.
        error: BlockError,
    },
    /// A certificate is for another block than its header.
    #[error("header {0}: the certificate is for another block")]
    CertificateMismatch(usize),
    /// A header of a block a chain reset set aside: part of no chain, certified or not.
    #[error("header {index}: made in epoch {epoch} above height {kept}, which the chain's reset in epoch {reset} kept; the block was set aside")]
    SetAside {
        /// The header's place in the bundle.
        index: usize,
        /// The header's epoch.
        epoch: u32,
        /// The height the reset kept.
        kept: u64,
        /// The reset's epoch.
        reset: u32,
    },
    /// A configuration block fails: not the admin chain's next certified block, or a
    /// change it holds does not apply.
    #[error("configuration block {index}: {why}")]
    Configuration {
        /// Which block.
        index: usize,
        /// Why.
        why: String,
    },
    /// Headers of another chain, or not in increasing height order.
    #[error("headers must be of the invoice's chain, by increasing height")]
    HeaderOrder,
    /// A reference to a header that is not there.
    #[error("{0} refers to a missing header")]
    MissingHeader(&'static str),
    /// An inclusion proof fails.
    #[error("{what} is not in its block: {error}")]
    Inclusion {
        /// Which entry.
        what: &'static str,
        /// Why.
        error: String,
    },
    /// The request entry is not a validly signed invoice request of this chain.
    #[error("the request entry: {0}")]
    Request(String),
    /// The issued entry does not answer the request or is not this invoice.
    #[error("the issued entry: {0}")]
    Issued(String),
    /// The status proof fails.
    #[error("status: {0}")]
    Status(String),
    /// The status header is older than allowed.
    #[error("status is as of {age_ms} ms ago, more than the {max_ms} ms allowed")]
    Stale {
        /// Age of the status header.
        age_ms: u64,
        /// The limit.
        max_ms: u64,
    },
}

/// The epochs the bundle's configuration blocks define, from genesis
/// ([`configuration_epochs`]).
pub fn epochs_of(bundle: &Bundle, genesis: &Genesis) -> Result<Epochs, Problem> {
    configuration_epochs(&bundle.configuration, genesis)
}

/// The epochs the admin chain's `blocks` (from height 1) define, from genesis: each must
/// be the admin chain's next block, signed and certified under the epochs before it,
/// with its entries whole, and each change in it must apply.
pub fn configuration_epochs(blocks: &[ConfigBlock], genesis: &Genesis) -> Result<Epochs, Problem> {
    let network = genesis.network_id();
    let mut epochs = Epochs::new(genesis);
    let admin = genesis.config().admin();
    let mut parent = fapiao_core::BlockHash(fapiao_core::Hash32::ZERO);
    // The epoch that certifies the next admin block: its parent's (0 at height 1).
    let mut certifying = 0;
    for (index, b) in blocks.iter().enumerate() {
        let fail = |why: String| Problem::Configuration { index, why };
        let h = &b.header.header;
        if Some(h.body.chain) != admin || h.body.height != index as u64 + 1 || h.body.parent != parent {
            return Err(fail("not the admin chain's next block".into()));
        }
        if h.body.epoch < certifying {
            return Err(fail("its epoch is before its parent's".into()));
        }
        let hash = h.verify(&epochs, &network).map_err(|e| fail(e.to_string()))?;
        let c = &b.header.certificate;
        if c.chain != h.body.chain || c.height != h.body.height || c.block != hash {
            return Err(fail("the certificate is for another block".into()));
        }
        if c.epoch != certifying {
            return Err(fail(format!(
                "certified by epoch {}, not by its parent's epoch {certifying}",
                c.epoch
            )));
        }
        c.verify(&epochs, &network).map_err(|e| fail(e.to_string()))?;
        let whole = Block {
            header: h.clone(),
            entries: b.entries.clone(),
        };
        whole.check_entries().map_err(|e| fail(e.to_string()))?;
        for entry in &b.entries {
            match entry {
                Entry::Event(e) => match &e.body.kind {
                    EventKind::ConfigChanged(r) => {
                        epochs.apply(r).map_err(|e| fail(e.to_string()))?;
                    }
                    _ => return Err(fail("an entry is not a configuration change".into())),
                },
                Entry::Derived(_) => return Err(fail("an entry is not a configuration change".into())),
            }
        }
        parent = hash;
        certifying = h.body.epoch;
    }
    Ok(epochs)
}

/// Checks every hash, signature, certificate quorum, inclusion proof and the status
/// proof of `bundle` against `genesis`. `now_ms` and `max_age_ms` check freshness.
/// Returns every problem found (the checks that depend on a failed one are skipped).
// Long: the verifier's checks in FORMAT.md §12's numbered order, one after the other, so the code reads against the
// specification.
pub fn verify(
    bundle: &Bundle,
    genesis: &Genesis,
    now_ms: u64,
    max_age_ms: Option<u64>,
) -> Result<Verified, Vec<Problem>> {
    let mut problems = Vec::new();
    let network = genesis.network_id();
    if bundle.version != BUNDLE_VERSION {
        return Err(vec![Problem::Version(bundle.version)]);
    }
    if bundle.network != network {
        return Err(vec![Problem::Network]);
    }
    let epochs = match epochs_of(bundle, genesis) {
        Ok(e) => e,
        Err(p) => return Err(vec![p]),
    };
    let chain = bundle.number.member();
    // Headers: owner signature, certificate for that very block, quorum, each in its
    // own epoch.
    for (index, ch) in bundle.headers.iter().enumerate() {
        let hash = match ch.header.verify(&epochs, &network) {
            Ok(h) => h,
            Err(error) => {
                problems.push(Problem::Header { index, error });
                continue;
            }
        };
        let b = &ch.header.body;
        if let Some(r) = epochs.set_aside(b.chain, b.height, b.epoch) {
            problems.push(Problem::SetAside {
                index,
                epoch: b.epoch,
                kept: r.height,
                reset: r.epoch,
            });
            continue;
        }
        let c = &ch.certificate;
        // A block is certified by its parent's epoch, never a later one than its own.
        let epoch_ok = c.epoch <= ch.header.body.epoch;
        if c.chain != ch.header.body.chain || c.height != ch.header.body.height || c.block != hash || !epoch_ok {
            problems.push(Problem::CertificateMismatch(index));
        } else if let Err(error) = c.verify(&epochs, &network) {
            problems.push(Problem::Header { index, error });
        }
    }
    let ordered = bundle.headers.iter().all(|h| h.header.body.chain == chain)
        && bundle
            .headers
            .windows(2)
            .all(|w| w[0].header.body.height < w[1].header.body.height);
    if !ordered || bundle.headers.is_empty() {
        problems.push(Problem::HeaderOrder);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let header = |i: u32, what: &'static str| {
        bundle
            .headers
            .get(i as usize)
            .map(|h| &h.header)
            .ok_or(Problem::MissingHeader(what))
    };
    let included = |p: &EntryProof, what: &'static str| -> Result<&Header, Problem> {
        let h = header(p.header, what)?;
        merkle::verify_inclusion(
            &p.entry.leaf_hash(),
            p.index,
            u64::from(h.body.event_count),
            &p.path,
            &h.body.events_root,
        )
        .map_err(|e| Problem::Inclusion {
            what,
            error: e.to_string(),
        })?;
        Ok(h)
    };

    // The request: a validly signed InvoiceRequested of this chain, in a certified block.
    let request = included(&bundle.request, "the request").and_then(|_| match &bundle.request.entry {
        Entry::Event(ev) => {
            let id = ev.verify(&network).map_err(|e| Problem::Request(e.to_string()))?;
            if ev.body.chain != chain {
                return Err(Problem::Request("it is for another chain".into()));
            }
            match &ev.body.kind {
                EventKind::InvoiceRequested(r) => Ok((id, r.request_id.clone())),
                _ => Err(Problem::Request("it is not an invoice request".into())),
            }
        }
        Entry::Derived(_) => Err(Problem::Request("it is a derived entry, not a signed event".into())),
    });
    // The issue: derived from that request, this number.
    let issued = included(&bundle.issued, "the issued entry").and_then(|h| match &bundle.issued.entry {
        Entry::Derived(d) => match &d.kind {
            DerivedKind::InvoiceIssued(i) if i.number == bundle.number => Ok((d.cause, i.clone(), h.body.height)),
            DerivedKind::InvoiceIssued(_) => Err(Problem::Issued("it issues another number".into())),
            _ => Err(Problem::Issued("it is not an invoice issue".into())),
        },
        Entry::Event(_) => Err(Problem::Issued("it is an input event, not a derived entry".into())),
    });
    let (request, issued) = match (request, issued) {
        (Ok(r), Ok(i)) => (r, i),
        (r, i) => {
            problems.extend(r.err());
            problems.extend(i.err());
            return Err(problems);
        }
    };
    let ((request_id_event, request_id), (cause, issued, issued_height)) = (request, issued);
    if cause != request_id_event || issued.request_id != request_id {
        return Err(vec![Problem::Issued("it does not answer the bundled request".into())]);
    }

    // The status: the invoice's state entry under a certified state root.
    let status_header = match header(bundle.status.header, "the status") {
        Ok(h) => h,
        Err(p) => return Err(vec![p]),
    };
    if status_header.body.height < issued_height {
        return Err(vec![Problem::Status(
            "proven against a header older than the issue".into(),
        )]);
    }
    let key = StateKey::Invoice(bundle.number);
    let value_bytes = bundle.status.value.to_bytes();
    if let Err(e) = smt::verify(
        &status_header.body.state_root,
        &smt::key_hash(&key.to_bytes()),
        Some(&smt::value_hash(&value_bytes)),
        &bundle.status.proof,
    ) {
        return Err(vec![Problem::Status(e.to_string())]);
    }
    let blue = match &bundle.status.value {
        StateValue::Invoice(InvoiceRecord::Blue(b)) => b,
        _ => {
            return Err(vec![Problem::Status(
                "the proven value is not an issued invoice".into(),
            )])
        }
    };
    if blue.issued != issued {
        return Err(vec![Problem::Status("the proven record is of another issue".into())]);
    }
    let status = match blue.status() {
        InvoiceStatus::Issued => Status::Issued,
        InvoiceStatus::PartiallyReversed => Status::PartiallyReversed(blue.red_letters.clone()),
        InvoiceStatus::Reversed => Status::Reversed(blue.red_letters.clone()),
    };
    let as_of_ms = status_header.body.timestamp.0;
    if let Some(max_ms) = max_age_ms {
        let age_ms = now_ms.saturating_sub(as_of_ms);
        if age_ms > max_ms {
            return Err(vec![Problem::Stale { age_ms, max_ms }]);
        }
    }
    Ok(Verified {
        issued,
        chain,
        issued_height,
        status,
        claim: blue.claim.as_ref().map(|c| Claim {
            claimant: c.claimant,
            claim_ref: c.claim_ref.clone(),
            at_ms: c.claimed_at.0,
            closed_at_ms: c.closed_at.map(|t| t.0),
        }),
        booking: blue.booking.as_ref().map(|b| (b.status, b.at.0)),
        forms: blue
            .forms
            .iter()
            .map(|f| Form {
                form: f.form,
                initiator: f.initiator,
                state: f.state_at(status_header.body.timestamp),
                opened_at_ms: f.opened_at.0,
                red_number: f.red_number,
            })
            .collect(),
        replaced_by: blue.replaced_by,
        as_of_height: status_header.body.height,
        as_of_ms,
    })
}
