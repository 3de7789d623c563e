//! The simulator's invariants: what must hold after every step, and at the end.

use super::{Held, SimFailure, World};
use fapiao_core::event::FailureReason;
use fapiao_core::{Fen, InvoiceNumber, MemberCode};
use fapiao_domain::state::{InvoiceRecord, RequestOutcome, RequestRecord};
use fapiao_domain::{MemState, StateKey, StateValue};
use std::collections::BTreeMap;

impl World {
    /// Every member's certified blocks are the globally certified ones.
    pub(super) fn check_certified_agree(&self) -> Result<(), SimFailure> {
        for m in &self.members {
            for ((chain, height), cert) in &m.disk.certs {
                if self.certified.get(&(*chain, *height)) != Some(&cert.block) {
                    return Err(self.fail(format!("member {} holds a certificate nobody else agrees on", m.code)));
                }
            }
        }
        Ok(())
    }

    /// Compares the blocks honest member `i` stored since the last call with what every
    /// other honest member stores at the same (chain, height): the same block has the
    /// same entries, derived ones included, and re-executing it left the same state
    /// tree root, equal to the header's; an honest chain has one block per height.
    pub(super) fn check_held(&mut self, i: usize) {
        if Some(i) == self.equivocator {
            return;
        }
        let equivocator = self.equivocator.map(|e| self.members[e].code);
        let mut broken = Vec::new();
        let World { members, held, .. } = self;
        let m = &mut members[i];
        for (chain, c) in &m.disk.chains {
            if !c.blocks.is_empty() && !m.disk.genesis.config().may_read(m.code, *chain) {
                broken.push(format!(
                    "member {} holds blocks of chain {chain}, which it may not read",
                    m.code
                ));
            }
            let from = m.checked.get(chain).copied().unwrap_or(0) as usize;
            for (k, block) in c.blocks.iter().enumerate().skip(from) {
                let height = k as u64 + 1;
                let hash = block.header.hash();
                let root = c.roots[k];
                if root != block.header.body.state_root {
                    broken.push(format!(
                        "member {} stores ({chain}, {height}) with state root {root}, the header says {}",
                        m.code, block.header.body.state_root
                    ));
                }
                let at = held.entry((*chain, height)).or_default();
                match at.iter().find(|h| h.hash == hash) {
                    Some(h) if h.entries != block.entries || h.root != root => broken.push(format!(
                        "members {} and {} hold block {hash} at ({chain}, {height}) with different {}",
                        h.holder,
                        m.code,
                        if h.root != root { "state roots" } else { "entries" }
                    )),
                    Some(_) => {}
                    None => {
                        if Some(*chain) != equivocator {
                            if let Some(other) = at.first() {
                                broken.push(format!(
                                    "honest chain {chain} has two blocks at height {height}: {} at member {}, {hash} at member {}",
                                    other.hash, other.holder, m.code
                                ));
                            }
                        }
                        at.push(Held {
                            hash,
                            entries: block.entries.clone(),
                            root,
                            holder: m.code,
                        });
                    }
                }
            }
            m.checked.insert(*chain, c.blocks.len() as u64);
        }
        for b in broken {
            self.violation(b);
        }
    }

    /// Honest members agree on every honest chain's head and state root, and every block
    /// of those chains is certified everywhere; if any honest member saw the
    /// equivocation (it holds evidence, or a block of the equivocator's chain that the
    /// equivocator's own chain does not have), every honest member holds evidence.
    pub(super) fn converged(&self) -> Result<(), String> {
        let honest = self.staying();
        for &i in &honest {
            if !self.up(i) {
                return Err(format!("member {} is down", self.members[i].code));
            }
        }
        for &c in &honest {
            let chain = self.members[c].code;
            let own = self.members[c]
                .disk
                .chains
                .get(&chain)
                .map(|x| (x.blocks.len(), x.root()));
            for &i in &honest {
                let m = &self.members[i];
                if !m.disk.genesis.config().may_read(m.code, chain) {
                    continue;
                }
                let theirs = m.disk.chains.get(&chain).map(|x| (x.blocks.len(), x.root()));
                if theirs != own {
                    return Err(format!(
                        "member {} has chain {chain} at {theirs:?}, owner at {own:?}",
                        m.code
                    ));
                }
                let len = own.map_or(0, |o| o.0 as u64);
                let replica = m.replica.as_ref().ok_or("down")?;
                let certified = replica
                    .heads()
                    .iter()
                    .find(|h| h.chain == chain)
                    .map_or(0, |h| h.certified);
                if certified != len {
                    return Err(format!(
                        "member {} has chain {chain} certified to {certified} of {len}",
                        m.code
                    ));
                }
            }
        }
        if let Some(e) = self.equivocator {
            let chain = self.members[e].code;
            if self.equivocation_seen(chain) {
                for &i in &honest {
                    if !self.members[i].disk.evidence.contains_key(&chain) {
                        return Err(format!(
                            "member {} has no evidence against {chain}",
                            self.members[i].code
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether an honest member holds evidence against `chain`, or a block of it its
    /// owner does not hold. A second block that was lost in flight, or only ever parked
    /// in the memory of a member that then crashed, was never seen, and nobody can be
    /// expected to prove it.
    fn equivocation_seen(&self, chain: MemberCode) -> bool {
        let Some(e) = self.equivocator else { return false };
        let owner = self.members[e].disk.chains.get(&chain);
        self.staying().into_iter().any(|i| {
            let d = &self.members[i].disk;
            d.evidence.contains_key(&chain)
                || d.chains.get(&chain).is_some_and(|c| {
                    c.blocks.iter().enumerate().any(|(k, b)| {
                        owner.and_then(|o| o.blocks.get(k)).map(|o| o.header.hash()) != Some(b.header.hash())
                    })
                })
        })
    }

    /// After convergence: every honest member holds every honest chain's state records
    /// exactly as its owner does, and the same state root after every block; and the
    /// books of every honest chain balance.
    pub(super) fn check_final_state(&self) -> Result<(), String> {
        let honest = self.staying();
        for &c in &honest {
            let chain = self.members[c].code;
            let Some(own) = self.members[c].disk.chains.get(&chain) else {
                continue;
            };
            for &i in &honest {
                let m = &self.members[i];
                if !m.disk.genesis.config().may_read(m.code, chain) {
                    continue;
                }
                let Some(theirs) = m.disk.chains.get(&chain) else {
                    return Err(format!("member {} does not hold chain {chain}", m.code));
                };
                if theirs.state != own.state {
                    return Err(format!(
                        "member {} holds chain {chain}'s state records differently from its owner",
                        m.code
                    ));
                }
                if theirs.roots != own.roots {
                    return Err(format!(
                        "member {} has chain {chain}'s state roots differently from its owner",
                        m.code
                    ));
                }
            }
            if Some(c) == self.admin {
                continue; // configuration only: no books
            }
            let opening = self.members[c]
                .disk
                .genesis
                .config()
                .merchant(chain)
                .map_or(Fen::ZERO, |m| m.initial_fee_balance);
            books_balance(&own.state, opening).map_err(|e| format!("chain {chain}: {e}"))?;
        }
        Ok(())
    }
}

/// The money invariants of one chain's state, which no single rule checks as a whole:
/// each invoice's standing allocations sum to what is left of it; each payment's
/// invoiced amount is the sum of what the invoices still draw on it, and its invoice
/// list names every invoice that drew on it; the fee balance is the opening balance
/// plus the deposits minus every fee charged; the fee queue holds only requests that
/// failed for the fee balance and were not retried.
// Long: every balance of one chain's books, checked one after the other.
fn books_balance(state: &MemState, opening: Fen) -> Result<(), String> {
    let mut drawn: BTreeMap<&str, i64> = BTreeMap::new();
    let mut drew_on: BTreeMap<&str, Vec<InvoiceNumber>> = BTreeMap::new();
    let mut balance = opening.fen();
    let mut fee_balance = None;
    let mut queue = Vec::new();
    for value in state.0.values() {
        match value {
            StateValue::Invoice(InvoiceRecord::Blue(b)) => {
                let standing: i64 = b.standing.iter().map(|a| a.amount.fen()).sum();
                let left = b.remaining_total().map(Fen::fen);
                if left != Some(standing) {
                    return Err(format!(
                        "invoice {} stands at {standing} fen over its payments but has {left:?} left",
                        b.issued.number
                    ));
                }
                for a in &b.standing {
                    *drawn.entry(&a.payment_id).or_default() += a.amount.fen();
                }
                for a in &b.issued.allocations {
                    drew_on.entry(&a.payment_id).or_default().push(b.issued.number);
                }
                balance -= b.issued.fee.fen();
            }
            StateValue::Deposit(d) => balance += d.amount.fen(),
            StateValue::Meta(m) => fee_balance = Some(m.fee_balance.fen()),
            StateValue::FeeBlocked(q) => queue = q.requests.clone(),
            _ => {}
        }
    }
    for (key, value) in &state.0 {
        if let (StateKey::PaymentInvoicing(pid), StateValue::PaymentInvoicing(inv)) = (key, value) {
            let standing = drawn.get(pid.as_str()).copied().unwrap_or(0);
            if inv.invoiced.fen() != standing {
                return Err(format!(
                    "payment {pid} is invoiced {} fen but the invoices draw {standing} fen on it",
                    inv.invoiced
                ));
            }
            let mut listed = inv.invoices.clone();
            let mut expected = drew_on.remove(pid.as_str()).unwrap_or_default();
            listed.sort();
            expected.sort();
            if listed != expected {
                return Err(format!(
                    "payment {pid} lists invoices {listed:?}, the invoices that drew on it are {expected:?}"
                ));
            }
        }
    }
    if let Some((pid, _)) = drew_on.into_iter().next() {
        return Err(format!("payment {pid} was drawn on but has no invoicing record"));
    }
    if fee_balance.unwrap_or(opening.fen()) != balance {
        return Err(format!(
            "fee balance is {fee_balance:?} fen, opening {opening} plus deposits minus fees is {balance} fen"
        ));
    }
    for id in queue {
        match state.0.get(&StateKey::Request(id.clone())) {
            Some(StateValue::Request(RequestRecord {
                outcome:
                    RequestOutcome::Failed {
                        reason: FailureReason::FeeBalanceTooLow,
                        ..
                    },
                retried_by: None,
                ..
            })) => {}
            other => return Err(format!("request {id} waits for a fee deposit but is {other:?}")),
        }
    }
    Ok(())
}
