//! Building invoice proof bundles from the store (any chain this node holds).

use crate::Engine;
use fapiao_core::event::DerivedKind;
use fapiao_core::event::InvoiceIssued;
use fapiao_core::state::{InvoiceRecord, StateKey, StateValue};
use fapiao_core::{merkle, CheckCode, Entry, Fen, Hash32, InvoiceNumber, MemberCode};
use fapiao_domain::StateRead;
use fapiao_proof::{Bundle, CertifiedHeader, EntryProof, StatusProof, BUNDLE_VERSION};
use fapiao_store::tables::IdxInvoice;
use fapiao_store::{EntryLoc, StoreError};

/// Why no bundle was built.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// No issued invoice with this number and check code. (A wrong check code and an
    /// unknown number are deliberately the same answer.)
    #[error("no invoice with this number and check code")]
    NotFound,
    /// The invoice or the chain's latest state is not certified yet: retry shortly.
    #[error("the invoice's chain has no certified state covering it yet; retry shortly")]
    NotCertified,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a verifier presents with an invoice's number to get its bundle: the check code
/// printed on it, or, as the national platform asks for a fully digitalised invoice, its
/// issue date and its total including tax (价税合计).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factors {
    /// The 20-digit check code.
    CheckCode(CheckCode),
    /// The issue date and the total.
    IssueDateAndTotal {
        /// The business day of issue (days since 1970-01-01 in UTC+8, the date printed).
        day: u64,
        /// The total including tax.
        total: Fen,
    },
}

impl Factors {
    /// Whether the invoice `issued` has these factors.
    fn match_issue(&self, issued: &InvoiceIssued) -> bool {
        match self {
            Factors::CheckCode(c) => issued.check_code == *c,
            Factors::IssueDateAndTotal { day, total } => {
                crate::reconcile::business_day(issued.issued_at.0) == *day && issued.total == *total
            }
        }
    }
}

/// Attempts at a consistent read while blocks are being committed.
const SNAPSHOT_ATTEMPTS_MAX: usize = 5;

impl Engine {
    /// The proof bundle of invoice `number`, if `factors` are its own (a wrong factor
    /// and an unknown number are the same answer). The status is proven against the
    /// chain's head, which must be certified.
    // Long: the bundle's parts (certified headers, entries with their proofs, the status proof), read from one
    // snapshot and retried whole when the head moves under it.
    pub fn proof_bundle(&self, number: &InvoiceNumber, factors: &Factors) -> Result<Bundle, ProofError> {
        let chain = number.member();
        if self.genesis().merchant(chain).is_none() {
            return Err(ProofError::NotFound);
        }
        for _ in 0..SNAPSHOT_ATTEMPTS_MAX {
            let store = self.store();
            let head = store.head(chain)?.ok_or(ProofError::NotFound)?;
            let value = self
                .store()
                .state(chain)
                .get(&StateKey::Invoice(*number))?
                .ok_or(ProofError::NotFound)?;
            match &value {
                StateValue::Invoice(InvoiceRecord::Blue(b)) if factors.match_issue(&b.issued) => {}
                _ => return Err(ProofError::NotFound),
            }
            let proof = store.prove(chain, &StateKey::Invoice(*number))?;
            if store.head(chain)?.map(|h| h.hash) != Some(head.hash) {
                continue; // a block landed meanwhile: read again
            }
            let Some(issue_loc) = store.get::<IdxInvoice>(number)? else {
                return Err(ProofError::NotFound);
            };
            let issued_entry = store.entry(&issue_loc)?;
            // The invoice index must point at this invoice's issue: anything else is a
            // damaged index row, reported as such rather than proven.
            let cause = match &issued_entry {
                Some(Entry::Derived(d)) if matches!(&d.kind, DerivedKind::InvoiceIssued(i) if i.number == *number) => {
                    d.cause
                }
                _ => {
                    return Err(ProofError::Store(StoreError::Tampered {
                        chain,
                        key: format!("invoice index row of {number}"),
                        detail: format!(
                            "it points at block {} entry {}, which is not that invoice's issue",
                            issue_loc.height, issue_loc.index
                        ),
                    }))
                }
            };
            let request_loc = store.locate(&cause)?.ok_or(ProofError::NotFound)?;
            let mut heights = vec![request_loc.height, issue_loc.height, head.height];
            heights.sort_unstable();
            heights.dedup();
            let mut headers = Vec::with_capacity(heights.len());
            for h in &heights {
                let header = store.header(chain, *h)?.ok_or(ProofError::NotFound)?;
                let certificate = store
                    .certificate(chain, *h)?
                    .filter(|c| c.block == header.hash())
                    .ok_or(ProofError::NotCertified)?;
                headers.push(CertifiedHeader { header, certificate });
            }
            let at = |h: u64| heights.iter().position(|x| *x == h).unwrap_or(0) as u32;
            let request = self.entry_proof(chain, &request_loc, at(request_loc.height))?;
            let issued_proof = self.entry_proof(chain, &issue_loc, at(issue_loc.height))?;
            return Ok(Bundle {
                version: BUNDLE_VERSION,
                network: self.network(),
                number: *number,
                headers,
                request,
                issued: issued_proof,
                status: StatusProof {
                    header: at(head.height),
                    value,
                    proof,
                },
            });
        }
        Err(ProofError::NotCertified)
    }

    fn entry_proof(&self, chain: MemberCode, loc: &EntryLoc, header: u32) -> Result<EntryProof, ProofError> {
        let block = self.store().block(chain, loc.height)?.ok_or(ProofError::NotFound)?;
        let leaves: Vec<Hash32> = block.entries.iter().map(Entry::leaf_hash).collect();
        let index = loc.index as usize;
        let path = merkle::inclusion_proof(&leaves, index).map_err(|_| ProofError::NotFound)?;
        let entry = block.entries.get(index).cloned().ok_or(ProofError::NotFound)?;
        Ok(EntryProof {
            header,
            index: loc.index.into(),
            entry,
            path,
        })
    }
}
