//! Red-letter reversal (红字发票) of an issued invoice, whole or by lines, planned
//! against what is left of each original line.

use super::*;

/// A reversal checked against the invoice, not yet written.
pub(super) struct RedPlan {
    blue: BlueInvoice,
    lines: Vec<IssuedLine>,
    reversing: Vec<RateAmounts>,
    remaining: Vec<RateAmounts>,
}

impl<S: StateRead> Exec<'_, '_, '_, '_, S> {
    pub(super) fn red_letter(&mut self, r: &RedLetterRequested) -> Step<DerivedKind, S::Error> {
        if self.state.request(&r.request_id)?.is_some() {
            return Err(Rejection::DuplicateRequestId(r.request_id.clone()).into());
        }
        let outcome = self.seller_red_letter(r)?;
        let (record_outcome, derived) = match outcome {
            Ok(buyer::SellerRed::Issued(rev)) => (
                RequestOutcome::Reversed(rev.red_number),
                DerivedKind::InvoiceReversed(rev),
            ),
            Ok(buyer::SellerRed::Waiting(changed)) => (
                RequestOutcome::AwaitingConfirmation(changed.form.form),
                DerivedKind::RedFormChanged(changed),
            ),
            Err(f) => f.recorded(&r.request_id),
        };
        self.record_request(&r.request_id, RequestBody::RedLetter(r.clone()), record_outcome);
        Ok(derived)
    }

    /// Checks a reversal of `scope` of invoice `n` against what is left of it, writing
    /// nothing: what a form is checked with when it opens and when it is confirmed.
    // Long: the red-letter checks in their documented order (FORMAT.md §9), each returning its failure.
    pub(super) fn plan_red_letter(
        &self,
        n: InvoiceNumber,
        scope: &RedLetterScope,
    ) -> Step<Result<RedPlan, Failure>, S::Error> {
        let blue = match self.state.invoice(&n)? {
            Some(InvoiceRecord::Blue(b)) if n.member() == self.ctx.chain => b,
            _ => {
                return Ok(Err(fail(
                    FailureReason::InvoiceNotFound,
                    "invoice_number",
                    format!("{n} is not an issued invoice of this merchant"),
                )))
            }
        };
        if blue.fully_reversed() {
            return Ok(Err(fail(
                FailureReason::InvoiceAlreadyReversed,
                "invoice_number",
                format!("{n} is already fully reversed"),
            )));
        }
        if blue.red_letters.len() >= RED_LETTERS_PER_INVOICE_MAX {
            return Ok(Err(fail(
                FailureReason::RedLettersLimit,
                "invoice_number",
                format!(
                    "{n} already has {} red-letter invoices, the most one invoice may have",
                    blue.red_letters.len()
                ),
            )));
        }
        let corrupt = || ExecError::Corrupt(StateKey::Invoice(n));
        let original = &blue.issued.lines;
        let mut left = self.lines_left(n, &blue)?;
        let lines: Vec<IssuedLine> = match scope {
            // Whatever is left of each line, under the line's own description.
            RedLetterScope::Full => original
                .iter()
                .zip(&left)
                .filter(|(_, l)| l.any())
                .map(|(o, l)| {
                    if *l == LineLeft::of(o) {
                        o.clone()
                    } else {
                        IssuedLine {
                            item: LineItem {
                                quantity: Quantity::ONE,
                                unit_price: l.net,
                                ..o.item.clone()
                            },
                            short_name: o.short_name.clone(),
                            net: l.net,
                            tax: l.tax,
                        }
                    }
                })
                .collect(),
            RedLetterScope::Partial(items) => {
                let mut lines = match self.validate_lines(items, None) {
                    Ok(t) => t.lines,
                    Err(f) => return Ok(Err(f)),
                };
                match amounts::take_lines(original, &mut left, &mut lines) {
                    Ok(()) => lines,
                    Err(TakeError::Unknown(i)) => {
                        return Ok(Err(fail(
                            FailureReason::RedLetterLineUnknown,
                            format!("scope.lines[{i}]"),
                            format!(
                                "\"{}\" at {} is not a line of {n} with something left after the lines before it \
                                 (partial lines keep the original's order)",
                                items[i].description, items[i].tax_rate
                            ),
                        )))
                    }
                    Err(TakeError::Exceeds { line, original, left }) => {
                        return Ok(Err(fail(
                            FailureReason::RedLetterExceedsRemaining,
                            format!("scope.lines[{line}]"),
                            format!(
                                "reversing net {} tax {} of line {} of {n}, but only net {} tax {} is left of it",
                                lines[line].net,
                                lines[line].tax,
                                original + 1,
                                left.net,
                                left.tax
                            ),
                        )))
                    }
                }
            }
        };
        let reversing = amounts::by_rate(&lines).ok_or(Rejection::Overflow("lines"))?;
        let mut remaining: Vec<RateAmounts> = blue.remaining.clone();
        for rv in &reversing {
            match remaining.iter_mut().find(|x| x.rate == rv.rate) {
                Some(x) if rv.net <= x.net && rv.tax <= x.tax => {
                    x.net = x.net.checked_sub(rv.net).ok_or_else(corrupt)?;
                    x.tax = x.tax.checked_sub(rv.tax).ok_or_else(corrupt)?;
                }
                Some(x) => {
                    return Ok(Err(fail(
                        FailureReason::RedLetterExceedsRemaining,
                        "scope",
                        format!(
                            "at {}: reversing net {} tax {}, but only net {} tax {} is left",
                            rv.rate, rv.net, rv.tax, x.net, x.tax
                        ),
                    )))
                }
                None => {
                    return Ok(Err(fail(
                        FailureReason::RedLetterExceedsRemaining,
                        "scope",
                        format!("rate {} does not appear on invoice {n}", rv.rate),
                    )))
                }
            }
        }
        Ok(Ok(RedPlan {
            blue,
            lines,
            reversing,
            remaining,
        }))
    }

    /// What is left of each line of blue invoice `n`: its red invoices' lines taken off
    /// in order, as they were when each was checked. A stored red line that no longer
    /// fits is a corrupt record.
    pub(super) fn lines_left(&self, n: InvoiceNumber, blue: &BlueInvoice) -> Step<Vec<LineLeft>, S::Error> {
        let original = &blue.issued.lines;
        let mut left: Vec<LineLeft> = original.iter().map(LineLeft::of).collect();
        for red in &blue.red_letters {
            let Some(InvoiceRecord::Red(r)) = self.state.invoice(red)? else {
                return Err(ExecError::Corrupt(StateKey::Invoice(*red)).into());
            };
            let mut lines = r.lines.clone();
            if amounts::take_lines(original, &mut left, &mut lines).is_err() || lines != r.lines {
                return Err(ExecError::Corrupt(StateKey::Invoice(n)).into());
            }
        }
        Ok(left)
    }

    pub(super) fn try_red_letter(
        &mut self,
        n: InvoiceNumber,
        request_id: &str,
        reason: RedLetterReason,
        scope: &RedLetterScope,
    ) -> Step<Result<InvoiceReversed, Failure>, S::Error> {
        let RedPlan {
            blue,
            lines,
            reversing,
            remaining,
        } = match self.plan_red_letter(n, scope)? {
            Ok(p) => p,
            Err(f) => return Ok(Err(f)),
        };
        let corrupt = || ExecError::Corrupt(StateKey::Invoice(n));
        // Each amount is within what is left of the invoice, itself within the bound.
        let net = Fen::checked_sum(reversing.iter().map(|x| x.net)).ok_or_else(corrupt)?;
        let tax = Fen::checked_sum(reversing.iter().map(|x| x.tax)).ok_or_else(corrupt)?;
        let total = net.checked_add(tax).ok_or_else(corrupt)?;

        let (standing, returned) = self.return_to_payments(n, &blue.standing, total)?;

        // A red invoice gives its total back to the quota of the month it is issued in.
        if let Some(mut q) = self.state.quota()? {
            if q.month == self.block.timestamp.utc8_month() {
                q.used = q.used.checked_sub(total.min(q.used)).ok_or_else(corrupt)?;
                self.state.put(StateKey::Quota, StateValue::Quota(q));
            }
        }
        let mut meta = self.meta()?;
        let red_number = self.next_number(&mut meta)?;
        let fully_reversed = remaining.iter().all(|x| x.net.is_zero() && x.tax.is_zero());
        let rev = InvoiceReversed {
            request_id: request_id.to_owned(),
            original: n,
            red_number,
            red_check_code: self.check_code(&red_number, self.id),
            reason,
            lines,
            net,
            tax,
            total,
            fully_reversed,
            allocations: returned,
            reversed_at: self.block.timestamp,
        };
        let mut blue = blue;
        blue.remaining = remaining;
        blue.standing = standing;
        blue.red_letters.push(red_number);
        self.state
            .put(StateKey::Invoice(n), StateValue::Invoice(InvoiceRecord::Blue(blue)));
        self.state.put(
            StateKey::Invoice(red_number),
            StateValue::Invoice(InvoiceRecord::Red(rev.clone())),
        );
        self.state.put(StateKey::Meta, StateValue::Meta(meta));
        Ok(Ok(rev))
    }

    /// Returns `total` of invoice `n` to the payments it drew on, last allocated first:
    /// the invoice's standing allocations after it, and what went back to each payment.
    /// The standing allocations sum to what is left of the invoice, and each payment's
    /// invoiced amount includes its allocation; a record that breaks either is corrupt.
    fn return_to_payments(
        &mut self,
        n: InvoiceNumber,
        standing: &[Allocation],
        total: Fen,
    ) -> Step<(Vec<Allocation>, Vec<Allocation>), S::Error> {
        let corrupt = || ExecError::Corrupt(StateKey::Invoice(n));
        let mut standing = standing.to_vec();
        let mut to_return = total;
        let mut returned: Vec<Allocation> = Vec::new();
        for a in standing.iter_mut().rev() {
            if to_return.is_zero() {
                break;
            }
            let take = a.amount.min(to_return);
            if take.is_zero() {
                continue;
            }
            a.amount = a.amount.checked_sub(take).ok_or_else(corrupt)?;
            to_return = to_return.checked_sub(take).ok_or_else(corrupt)?;
            returned.push(alloc(&a.payment_id, take));
            let mut inv = self.state.payment_invoicing(&a.payment_id)?.unwrap_or_default();
            inv.invoiced = inv
                .invoiced
                .checked_sub(take)
                .filter(|v| !v.is_negative())
                .ok_or_else(|| ExecError::Corrupt(StateKey::PaymentInvoicing(a.payment_id.clone())))?;
            self.state.put(
                StateKey::PaymentInvoicing(a.payment_id.clone()),
                StateValue::PaymentInvoicing(inv),
            );
        }
        if !to_return.is_zero() {
            return Err(corrupt().into());
        }
        Ok((standing, returned))
    }
}
