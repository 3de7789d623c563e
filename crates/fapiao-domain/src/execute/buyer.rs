//! The buyer's side of an invoice: the reimbursement lock's release and closing, the
//! booking status, and red-letter confirmation forms (红字确认单) started by either side.
//!
//! Who is the buyer: the member whose tax id is the invoice's buyer tax id, or the member
//! holding the invoice's reimbursement claim (a buyer's finance department that claimed
//! it). Anyone else is told `NotFound`, as for an unknown invoice, so a member learns
//! nothing about invoices that are not its own.
//!
//! A form waits at most [`RED_FORM_WINDOW_MS`] of block time. Nothing sweeps expired
//! forms: every action on an invoice first settles the forms whose deadline has passed in
//! this block's time (writing them void), and readers compute the same with
//! `FormSummary::state_at`, so every witness derives the same outcome.

use super::{fail, Exec, Failure, Step};
use crate::bounds::RED_FORMS_PER_INVOICE_MAX;
use crate::state::{
    BlueInvoice, Booking, ClaimInfo, FormSummary, InvoiceRecord, RedForm, RequestOutcome, StateKey, StateRead,
    StateValue,
};
use fapiao_core::event::{
    BookingRecorded, BookingSet, ClaimAction, ClaimChanged, ClaimRecorded, ClaimRefusal, ClaimRefused, ClaimRequested,
    FailureReason, FormState, InvoiceReversed, Party, RedFormAnswer, RedFormChanged, RedFormRef, RedFormRefusal,
    RedFormRefused, RedFormStart, RedLetterRequested,
};
use fapiao_core::{Derived, DerivedKind, InvoiceNumber, MemberCode};

/// What the seller's red-letter request did.
pub(super) enum SellerRed {
    /// The buyer had neither booked nor claimed the invoice: issued at once.
    Issued(InvoiceReversed),
    /// The buyer holds the invoice: a form now waits for its confirmation.
    Waiting(RedFormChanged),
}

/// Which of a lock holder's actions.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LockAction {
    Unlock,
    Close,
}

impl<S: StateRead> Exec<'_, '_, '_, '_, S> {
    /// The blue invoice `n` of this chain, with its expired forms settled.
    fn blue_settled(&mut self, n: InvoiceNumber) -> Step<Option<BlueInvoice>, S::Error> {
        let mut blue = match self.state.invoice(&n)? {
            Some(InvoiceRecord::Blue(b)) if n.member() == self.ctx.chain => b,
            _ => return Ok(None),
        };
        self.settle_expired(n, &mut blue)?;
        Ok(Some(blue))
    }

    /// Writes void every form of `blue` still waiting past its deadline at this block's
    /// time, and fails the seller's request that opened it.
    fn settle_expired(&mut self, n: InvoiceNumber, blue: &mut BlueInvoice) -> Step<(), S::Error> {
        let now = self.block.timestamp;
        let mut changed = false;
        for summary in blue.forms.iter_mut() {
            if summary.state == summary.state_at(now) {
                continue;
            }
            let key = StateKey::RedForm(n, summary.form);
            let mut form = self
                .state
                .red_form(&n, summary.form)?
                .ok_or(super::ExecError::Corrupt(key.clone()))?;
            form.state = FormState::Void;
            form.decided_at = Some(form.deadline());
            summary.state = FormState::Void;
            if form.initiator == Party::Seller {
                self.fail_seller_request(&form.request_id, "the buyer did not answer within 72 hours")?;
            }
            self.state.put(key, StateValue::RedForm(form));
            changed = true;
        }
        if changed {
            self.state.put(
                StateKey::Invoice(n),
                StateValue::Invoice(InvoiceRecord::Blue(blue.clone())),
            );
        }
        Ok(())
    }

    fn fail_seller_request(&mut self, request_id: &str, detail: &str) -> Step<(), S::Error> {
        let key = StateKey::Request(request_id.to_owned());
        let mut request = self
            .state
            .request(request_id)?
            .ok_or(super::ExecError::Corrupt(key.clone()))?;
        request.outcome = RequestOutcome::Failed {
            reason: FailureReason::RedFormNotConfirmed,
            field: "request_id".into(),
            detail: detail.into(),
        };
        self.state.put(key, StateValue::Request(request));
        Ok(())
    }

    /// Whether `member` is on the buyer's side of `blue`.
    fn is_buyer(&self, blue: &BlueInvoice, member: MemberCode) -> bool {
        let by_tax_id = match (&blue.issued.buyer.tax_id, self.ctx.config().member(member)) {
            (Some(t), Some(m)) => m.tax_id.as_deref() == Some(t.as_str()),
            _ => false,
        };
        by_tax_id || blue.claim.as_ref().is_some_and(|c| c.claimant == member)
    }

    // ---- reimbursement lock and booking ------------------------------------------------

    pub(super) fn unlock_claim(&mut self, a: &ClaimAction, member: MemberCode) -> Step<DerivedKind, S::Error> {
        self.lock_action(a, member, LockAction::Unlock)
    }

    pub(super) fn close_claim(&mut self, a: &ClaimAction, member: MemberCode) -> Step<DerivedKind, S::Error> {
        self.lock_action(a, member, LockAction::Close)
    }

    fn lock_action(&mut self, a: &ClaimAction, member: MemberCode, action: LockAction) -> Step<DerivedKind, S::Error> {
        let n = a.invoice_number;
        let refused = |refusal| {
            Ok(DerivedKind::ClaimRefused(ClaimRefused {
                invoice_number: n,
                claimant: member,
                refusal,
            }))
        };
        let Some(mut blue) = self.blue_settled(n)? else {
            return refused(ClaimRefusal::NotFound);
        };
        let Some(claim) = blue.claim.clone() else {
            return refused(ClaimRefusal::NotLocked);
        };
        if claim.claimant != member || claim.claim_ref != a.claim_ref {
            // The holder learns the lock is not theirs, not whose it is.
            return refused(ClaimRefusal::NotLockHolder);
        }
        if let Some(closed_at) = claim.closed_at {
            return refused(ClaimRefusal::Closed { closed_at });
        }
        let changed = ClaimChanged {
            invoice_number: n,
            claimant: member,
            claim_ref: a.claim_ref.clone(),
            at: self.block.timestamp,
        };
        let derived = match action {
            LockAction::Unlock => {
                blue.claim = None;
                DerivedKind::ClaimUnlocked(changed)
            }
            LockAction::Close => {
                blue.claim = Some(crate::state::ClaimInfo {
                    closed_at: Some(self.block.timestamp),
                    ..claim
                });
                DerivedKind::ClaimClosed(changed)
            }
        };
        self.state
            .put(StateKey::Invoice(n), StateValue::Invoice(InvoiceRecord::Blue(blue)));
        Ok(derived)
    }

    pub(super) fn set_booking(&mut self, b: &BookingSet, member: MemberCode) -> Step<DerivedKind, S::Error> {
        let n = b.invoice_number;
        let refused = |refusal| {
            Ok(DerivedKind::ClaimRefused(ClaimRefused {
                invoice_number: n,
                claimant: member,
                refusal,
            }))
        };
        let mut blue = match self.blue_settled(n)? {
            Some(blue) if self.is_buyer(&blue, member) => blue,
            _ => return refused(ClaimRefusal::NotFound),
        };
        if b.status.is_booked() && blue.fully_reversed() {
            return refused(ClaimRefusal::Reversed);
        }
        blue.booking = Some(Booking {
            status: b.status,
            buyer: member,
            at: self.block.timestamp,
        });
        self.state
            .put(StateKey::Invoice(n), StateValue::Invoice(InvoiceRecord::Blue(blue)));
        Ok(DerivedKind::BookingRecorded(BookingRecorded {
            invoice_number: n,
            buyer: member,
            status: b.status,
            at: self.block.timestamp,
        }))
    }

    // ---- red-letter confirmation forms -------------------------------------------------

    /// Whether a new form may open on `blue`: none waits, and the invoice has room.
    fn form_room(&self, n: InvoiceNumber, blue: &BlueInvoice) -> Result<u32, Failure> {
        if let Some(w) = blue.waiting_form(self.block.timestamp) {
            return Err(fail(
                FailureReason::RedFormOpen,
                "invoice_number",
                format!("form {} on {n} is still {}", w.form, w.state.name()),
            ));
        }
        if blue.forms.len() >= RED_FORMS_PER_INVOICE_MAX {
            return Err(fail(
                FailureReason::RedLettersLimit,
                "invoice_number",
                format!("{n} already has {RED_FORMS_PER_INVOICE_MAX} confirmation forms, the most one may have"),
            ));
        }
        Ok(blue.forms.len() as u32 + 1)
    }

    /// Records a new form (full record and the invoice's summary).
    fn open_form(&mut self, n: InvoiceNumber, mut blue: BlueInvoice, number: u32, form: RedForm) {
        blue.forms.push(FormSummary {
            form: number,
            initiator: form.initiator,
            state: form.state,
            opened_at: form.opened_at,
            red_number: form.red_number,
        });
        self.state.put(StateKey::RedForm(n, number), StateValue::RedForm(form));
        self.state
            .put(StateKey::Invoice(n), StateValue::Invoice(InvoiceRecord::Blue(blue)));
    }

    /// Writes a form's new state, in its record and in the invoice's summary (read back,
    /// since a confirmation's reversal has just rewritten the invoice).
    fn set_form_state(&mut self, n: InvoiceNumber, number: u32, mut form: RedForm) -> Step<(), S::Error> {
        let corrupt = || super::ExecError::Corrupt(StateKey::Invoice(n));
        let Some(InvoiceRecord::Blue(mut blue)) = self.state.invoice(&n)? else {
            return Err(corrupt().into());
        };
        let summary = blue.forms.iter_mut().find(|f| f.form == number).ok_or_else(corrupt)?;
        form.decided_at = Some(self.block.timestamp);
        summary.state = form.state;
        summary.red_number = form.red_number;
        self.state.put(StateKey::RedForm(n, number), StateValue::RedForm(form));
        self.state
            .put(StateKey::Invoice(n), StateValue::Invoice(InvoiceRecord::Blue(blue)));
        Ok(())
    }

    /// The seller's red-letter request: issued at once unless the buyer has booked or
    /// claimed the invoice, in which case it opens a form waiting for the buyer. Either
    /// way the invoice lists the form.
    pub(super) fn seller_red_letter(&mut self, r: &RedLetterRequested) -> Step<Result<SellerRed, Failure>, S::Error> {
        let n = r.invoice_number;
        if let Err(f) = self.plan_red_letter(n, &r.scope)? {
            return Ok(Err(f));
        }
        let Some(blue) = self.blue_settled(n)? else {
            unreachable!("plan_red_letter found the invoice");
        };
        let number = match self.form_room(n, &blue) {
            Ok(number) => number,
            Err(f) => return Ok(Err(f)),
        };
        let waiting = blue.held_by_buyer();
        let mut form = RedForm {
            initiator: Party::Seller,
            buyer: None,
            reason: r.reason,
            scope: r.scope.clone(),
            request_id: r.request_id.clone(),
            event: self.id,
            opened_at: self.block.timestamp,
            state: FormState::WaitingForBuyer,
            decided_at: None,
            red_number: None,
        };
        if waiting {
            self.open_form(n, blue, number, form);
            return Ok(Ok(SellerRed::Waiting(RedFormChanged {
                form: RedFormRef {
                    invoice_number: n,
                    form: number,
                },
                state: FormState::WaitingForBuyer,
                at: self.block.timestamp,
            })));
        }
        form.state = FormState::NoConfirmationNeeded;
        self.open_form(n, blue, number, form.clone());
        match self.try_red_letter(n, &r.request_id, r.reason, &r.scope)? {
            Ok(rev) => {
                form.red_number = Some(rev.red_number);
                self.set_form_state(n, number, form)?;
                Ok(Ok(SellerRed::Issued(rev)))
            }
            Err(f) => Ok(Err(f)),
        }
    }

    /// A buyer's form: checked against what is left of the invoice, then it waits for
    /// the seller.
    pub(super) fn start_buyer_form(&mut self, f: &RedFormStart, member: MemberCode) -> Step<DerivedKind, S::Error> {
        let n = f.invoice_number;
        let refused = |refusal| {
            Ok(DerivedKind::RedFormRefused(RedFormRefused {
                invoice_number: n,
                form: None,
                refusal,
            }))
        };
        let blue = match self.blue_settled(n)? {
            Some(blue) if self.is_buyer(&blue, member) => blue,
            _ => return refused(RedFormRefusal::NotFound),
        };
        let number = match self.form_room(n, &blue) {
            Ok(number) => number,
            Err(fl) => return refused(failed(fl)),
        };
        if let Err(fl) = self.plan_red_letter(n, &f.scope)? {
            return refused(failed(fl));
        }
        let form = RedForm {
            initiator: Party::Buyer,
            buyer: Some(member),
            reason: f.reason,
            scope: f.scope.clone(),
            request_id: format!("{n}-F{number}"),
            event: self.id,
            opened_at: self.block.timestamp,
            state: FormState::WaitingForSeller,
            decided_at: None,
            red_number: None,
        };
        self.open_form(n, blue, number, form);
        Ok(DerivedKind::RedFormChanged(RedFormChanged {
            form: RedFormRef {
                invoice_number: n,
                form: number,
            },
            state: FormState::WaitingForSeller,
            at: self.block.timestamp,
        }))
    }

    /// The form `r` and the side `signer` speaks for (`None`: the seller), or why not.
    fn form_and_side(
        &mut self,
        r: &RedFormRef,
        signer: Option<MemberCode>,
    ) -> Step<Result<(RedForm, Party), RedFormRefusal>, S::Error> {
        let Some(blue) = self.blue_settled(r.invoice_number)? else {
            return Ok(Err(RedFormRefusal::NotFound));
        };
        let side = match signer {
            None => Party::Seller,
            Some(m) if self.is_buyer(&blue, m) => Party::Buyer,
            Some(_) => return Ok(Err(RedFormRefusal::NotFound)),
        };
        Ok(match self.state.red_form(&r.invoice_number, r.form)? {
            Some(form) => Ok((form, side)),
            None => Err(RedFormRefusal::NotFound),
        })
    }

    /// The waited-for side confirms (the red invoice is issued as a derived entry right
    /// after the form's change) or rejects.
    pub(super) fn answer_form(
        &mut self,
        a: &RedFormAnswer,
        signer: Option<MemberCode>,
    ) -> Step<Vec<Derived>, S::Error> {
        let r = a.form;
        let me = self.id;
        let one = |kind| vec![Derived { cause: me, kind }];
        let refused = |refusal| {
            one(DerivedKind::RedFormRefused(RedFormRefused {
                invoice_number: r.invoice_number,
                form: Some(r.form),
                refusal,
            }))
        };
        let (mut form, side) = match self.form_and_side(&r, signer)? {
            Ok(x) => x,
            Err(refusal) => return Ok(refused(refusal)),
        };
        match form.state.waiting_for() {
            None => return Ok(refused(RedFormRefusal::NotWaiting(form.state))),
            Some(waits) if waits != side => return Ok(refused(RedFormRefusal::WrongSide)),
            Some(_) => {}
        }
        let changed = |state| {
            DerivedKind::RedFormChanged(RedFormChanged {
                form: r,
                state,
                at: self.block.timestamp,
            })
        };
        if !a.confirm {
            form.state = FormState::Rejected;
            if form.initiator == Party::Seller {
                self.fail_seller_request(&form.request_id, "the buyer rejected the confirmation form")?;
            }
            self.set_form_state(r.invoice_number, r.form, form)?;
            return Ok(one(changed(FormState::Rejected)));
        }
        let rev = match self.try_red_letter(r.invoice_number, &form.request_id, form.reason, &form.scope)? {
            Ok(rev) => rev,
            Err(f) => return Ok(refused(failed(f))),
        };
        form.state = FormState::Confirmed;
        form.red_number = Some(rev.red_number);
        if form.initiator == Party::Seller {
            let key = StateKey::Request(form.request_id.clone());
            let mut request = self
                .state
                .request(&form.request_id)?
                .ok_or(super::ExecError::Corrupt(key.clone()))?;
            request.outcome = RequestOutcome::Reversed(rev.red_number);
            self.state.put(key, StateValue::Request(request));
        }
        self.set_form_state(r.invoice_number, r.form, form)?;
        Ok(vec![
            Derived {
                cause: me,
                kind: changed(FormState::Confirmed),
            },
            Derived {
                cause: me,
                kind: DerivedKind::InvoiceReversed(rev),
            },
        ])
    }

    /// The side that started a waiting form takes it back.
    pub(super) fn withdraw_form(&mut self, r: &RedFormRef, signer: Option<MemberCode>) -> Step<DerivedKind, S::Error> {
        let refused = |refusal| {
            Ok(DerivedKind::RedFormRefused(RedFormRefused {
                invoice_number: r.invoice_number,
                form: Some(r.form),
                refusal,
            }))
        };
        let (mut form, side) = match self.form_and_side(r, signer)? {
            Ok(x) => x,
            Err(refusal) => return refused(refusal),
        };
        if form.state.waiting_for().is_none() {
            return refused(RedFormRefusal::NotWaiting(form.state));
        }
        if form.initiator != side {
            return refused(RedFormRefusal::WrongSide);
        }
        form.state = FormState::Withdrawn;
        if form.initiator == Party::Seller {
            self.fail_seller_request(&form.request_id, "the seller withdrew the confirmation form")?;
        }
        self.set_form_state(r.invoice_number, r.form, form)?;
        Ok(DerivedKind::RedFormChanged(RedFormChanged {
            form: *r,
            state: FormState::Withdrawn,
            at: self.block.timestamp,
        }))
    }
}

fn failed(f: Failure) -> RedFormRefusal {
    RedFormRefusal::Failed {
        reason: f.reason,
        detail: f.detail,
    }
}

impl<S: StateRead> Exec<'_, '_, '_, '_, S> {
    pub(super) fn claim(&mut self, c: &ClaimRequested, claimant: MemberCode) -> Step<DerivedKind, S::Error> {
        let refused = |refusal| {
            Ok(DerivedKind::ClaimRefused(ClaimRefused {
                invoice_number: c.invoice_number,
                claimant,
                refusal,
            }))
        };
        let mut blue = match self.state.invoice(&c.invoice_number)? {
            Some(InvoiceRecord::Blue(b)) if b.issued.check_code == c.check_code => b,
            // A wrong check code looks exactly like an unknown invoice.
            _ => return refused(ClaimRefusal::NotFound),
        };
        if let Some(closed_at) = blue.claim.as_ref().and_then(|c| c.closed_at) {
            return refused(ClaimRefusal::Closed { closed_at });
        }
        if let Some(first) = &blue.claim {
            return refused(ClaimRefusal::AlreadyClaimed {
                claimant: first.claimant,
                claimed_at: first.claimed_at,
            });
        }
        if blue.fully_reversed() {
            return refused(ClaimRefusal::Reversed);
        }
        blue.claim = Some(ClaimInfo {
            claimant,
            claim_ref: c.claim_ref.clone(),
            claimed_at: self.block.timestamp,
            event: self.id,
            closed_at: None,
        });
        self.state.put(
            StateKey::Invoice(c.invoice_number),
            StateValue::Invoice(InvoiceRecord::Blue(blue)),
        );
        Ok(DerivedKind::ClaimRecorded(ClaimRecorded {
            invoice_number: c.invoice_number,
            claimant,
            claim_ref: c.claim_ref.clone(),
            claimed_at: self.block.timestamp,
        }))
    }
}
