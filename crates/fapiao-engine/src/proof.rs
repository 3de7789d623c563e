//! Building invoice proof bundles from the store (any chain this node holds).

use crate::Engine;
use fapiao_core::event::DerivedKind;
use fapiao_core::event::InvoiceIssued;
use fapiao_core::state::{InvoiceRecord, StateKey, StateValue};
use fapiao_core::{merkle, smt, CheckCode, Entry, Fen, Hash32, InvoiceNumber, MemberCode};
use fapiao_proof::{Bundle, CertifiedHeader, ConfigBlock, EntryProof, StatusProof, BUNDLE_VERSION};
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
    /// The state as of the height asked for is older than this node keeps.
    #[error("this node keeps each chain's state as of its last 256 blocks and its last {days} days: the oldest height of this chain it proves is {oldest}")]
    NotKept {
        /// The oldest height this node can still prove a status as of.
        oldest: u64,
        /// How many days of block time of state versions it keeps.
        days: u64,
    },
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

/// Which state a bundle proves the invoice's status as of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AsOf {
    /// The chain's newest certified block (a block still awaiting its certificate above
    /// it does not hold the answer back).
    #[default]
    NewestCertified,
    /// A given height, which must be certified.
    Height(u64),
    /// The newest block at or before a time (ms since the epoch), which must be certified.
    Time(u64),
}

impl AsOf {
    /// From the query's text: a height (digits), or a date `YYYY-MM-DD` meaning the end
    /// of that business day (UTC+8).
    pub fn parse(s: &str) -> Option<AsOf> {
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().ok().filter(|h| *h > 0).map(AsOf::Height);
        }
        let day = crate::reconcile::parse_day(s)?;
        // The last millisecond of that day in UTC+8.
        Some(AsOf::Time((day + 1) * 86_400_000 - 8 * 3_600_000 - 1))
    }
}

impl Engine {
    /// The proof bundle of invoice `number`, if `factors` are its own (a wrong factor
    /// and an unknown number are the same answer), its status proven as of `as_of`: by
    /// default the chain's newest certified block, read from the state kept for it
    /// (`Store::state_at`), so a block awaiting its certificate never holds it back.
    pub fn proof_bundle(&self, number: &InvoiceNumber, factors: &Factors, as_of: AsOf) -> Result<Bundle, ProofError> {
        let chain = number.member();
        if self.epochs().first_epoch(chain).is_none() || self.epochs().latest().is_admin_chain(chain) {
            return Err(ProofError::NotFound);
        }
        let store = self.store();
        let head = store.head(chain)?.ok_or(ProofError::NotFound)?;
        let height = self.status_height(chain, head.height, as_of)?;
        let not_kept = ProofError::NotKept {
            oldest: store.oldest_kept(chain)?,
            days: store.history_days(),
        };
        let state = store.state_at(chain, height)?.ok_or(not_kept)?;
        let key = StateKey::Invoice(*number);
        let value = state.get(&key)?.ok_or(ProofError::NotFound)?;
        match &value {
            StateValue::Invoice(InvoiceRecord::Blue(b)) if factors.match_issue(&b.issued) => {}
            _ => return Err(ProofError::NotFound),
        }
        let proof = state.prove(&key)?;
        // What is served must verify: the kept state's root is the header's, and the
        // record is the one its leaf commits to (a row changed on disk is never proven).
        let status_header = store.header(chain, height)?.ok_or(ProofError::NotFound)?;
        let root = status_header.body.state_root;
        if state.root()? != root {
            return Err(ProofError::Store(StoreError::Inconsistent {
                chain,
                detail: format!("the state kept as of height {height} does not have that header's state root"),
            }));
        }
        let leaf = smt::value_hash(&value.to_bytes());
        if smt::verify(&root, &smt::key_hash(&key.to_bytes()), Some(&leaf), &proof).is_err() {
            return Err(ProofError::Store(StoreError::Tampered {
                chain,
                key: format!("{key:?} as of height {height}"),
                detail: "the record kept does not match the state tree's leaf".into(),
            }));
        }
        let (request_loc, issue_loc) = self.request_and_issue(chain, number)?;
        let mut heights = vec![request_loc.height, issue_loc.height, height];
        heights.sort_unstable();
        heights.dedup();
        let mut headers = Vec::with_capacity(heights.len());
        for h in &heights {
            headers.push(self.certified_header(chain, *h)?.ok_or(ProofError::NotCertified)?);
        }
        let at = |h: u64| heights.iter().position(|x| *x == h).unwrap_or(0) as u32;
        let request = self.entry_proof(chain, &request_loc, at(request_loc.height))?;
        let issued_proof = self.entry_proof(chain, &issue_loc, at(issue_loc.height))?;
        Ok(Bundle {
            version: BUNDLE_VERSION,
            network: self.network(),
            configuration: self.configuration_blocks()?,
            number: *number,
            headers,
            request,
            issued: issued_proof,
            status: StatusProof {
                header: at(height),
                value,
                proof,
            },
        })
    }

    /// Where invoice `number`'s request and its issue are in the chain's blocks.
    fn request_and_issue(&self, chain: MemberCode, number: &InvoiceNumber) -> Result<(EntryLoc, EntryLoc), ProofError> {
        let store = self.store();
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
        Ok((request_loc, issue_loc))
    }

    /// The admin chain's certified blocks from height 1, up to the first one not held or
    /// not certified: every configuration change a verifier, or a member joining, needs
    /// to know each epoch from genesis alone.
    pub fn configuration_blocks(&self) -> Result<Vec<ConfigBlock>, StoreError> {
        let Some(admin) = self.genesis().config().admin() else {
            return Ok(Vec::new());
        };
        let store = self.store();
        let mut out = Vec::new();
        for height in 1.. {
            let Some(header) = store.header(admin, height)? else {
                break;
            };
            let Some(certificate) = store.certificate(admin, height)?.filter(|c| c.block == header.hash()) else {
                break;
            };
            let header = CertifiedHeader { header, certificate };
            let Some(block) = store.block(admin, height)? else {
                break;
            };
            out.push(ConfigBlock {
                header,
                entries: block.entries,
            });
        }
        Ok(out)
    }

    /// The header at `height` of `chain` with its certificate, if it is certified.
    fn certified_header(&self, chain: MemberCode, height: u64) -> Result<Option<CertifiedHeader>, ProofError> {
        let store = self.store();
        let Some(header) = store.header(chain, height)? else {
            return Ok(None);
        };
        let certificate = store.certificate(chain, height)?.filter(|c| c.block == header.hash());
        Ok(certificate.map(|certificate| CertifiedHeader { header, certificate }))
    }

    /// The height a status is proven as of: the newest certified one within the state
    /// kept, or the one asked for, which must be certified.
    fn status_height(&self, chain: MemberCode, head: u64, as_of: AsOf) -> Result<u64, ProofError> {
        let store = self.store();
        let height = match as_of {
            AsOf::NewestCertified => {
                let lowest = store.oldest_kept(chain)?;
                for h in (lowest..=head).rev() {
                    if self.certified_header(chain, h)?.is_some() {
                        return Ok(h);
                    }
                }
                return Err(ProofError::NotCertified);
            }
            AsOf::Height(h) if h > head => return Err(ProofError::NotCertified),
            AsOf::Height(h) => h,
            AsOf::Time(t) => {
                // Block times never go back along a chain: the last block at or before
                // `t`, by bisection over the stored headers.
                let time_of = |h: u64| -> Result<u64, ProofError> {
                    Ok(store.header(chain, h)?.ok_or(ProofError::NotFound)?.body.timestamp.0)
                };
                if head == 0 || time_of(1)? > t {
                    return Err(ProofError::NotFound);
                }
                let (mut lo, mut hi) = (1, head);
                while lo < hi {
                    let mid = lo + (hi - lo).div_ceil(2);
                    if time_of(mid)? <= t {
                        lo = mid;
                    } else {
                        hi = mid - 1;
                    }
                }
                lo
            }
        };
        match self.certified_header(chain, height)? {
            Some(_) => Ok(height),
            None => Err(ProofError::NotCertified),
        }
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
