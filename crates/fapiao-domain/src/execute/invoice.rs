//! Invoice requests: the checks in their documented order (retry, lines, tax rules,
//! replacement, payments, policy, quota, fee) and issuance (numbers and check codes).

use super::*;
use crate::state::PaymentInvoicing;

impl<S: StateRead> Exec<'_, '_, '_, '_, S> {
    pub(super) fn request_invoice(&mut self, r: &InvoiceRequested) -> Step<DerivedKind, S::Error> {
        if self.state.request(&r.request_id)?.is_some() {
            return Err(Rejection::DuplicateRequestId(r.request_id.clone()).into());
        }

        let mut retried = None;
        let mut outcome = match self.check_retry(r)? {
            Err(f) => Err(f),
            Ok(prev) => {
                retried = prev;
                self.validate_and_issue(r, self.id)?
            }
        };
        if let Some(mut prev) = retried {
            if let RequestOutcome::Failed { reason, .. } = prev.1.outcome {
                if let Some(kind) = Blocked::of(reason) {
                    // The retry takes over: the original must not be issued automatically too.
                    let mut queue = self.state.blocked(kind)?;
                    queue.requests.retain(|id| *id != prev.0);
                    self.state.put(kind.key(), kind.value(queue));
                }
            }
            prev.1.retried_by = Some(r.request_id.clone());
            self.state.put(StateKey::Request(prev.0), StateValue::Request(prev.1));
        }
        if let Err(f) = &mut outcome {
            self.enqueue_blocked(&r.request_id, f)?;
        }
        let (record_outcome, derived) = match outcome {
            Ok(issued) => (
                RequestOutcome::Issued(issued.number),
                DerivedKind::InvoiceIssued(issued),
            ),
            Err(f) => f.recorded(&r.request_id),
        };
        self.record_request(&r.request_id, RequestBody::Invoice(r.clone()), record_outcome);
        Ok(derived)
    }

    /// `retry_of` must name an earlier failed invoice request not retried yet.
    #[allow(clippy::type_complexity)]
    pub(super) fn check_retry(
        &self,
        r: &InvoiceRequested,
    ) -> Step<Result<Option<(String, RequestRecord)>, Failure>, S::Error> {
        let Some(prev_id) = &r.retry_of else {
            return Ok(Ok(None));
        };
        let f = |d: String| Ok(Err(fail(FailureReason::RetryOfInvalid, "retry_of", d)));
        let Some(prev) = self.state.request(prev_id)? else {
            return f(format!("no request {prev_id} on this chain"));
        };
        if !matches!(prev.body, RequestBody::Invoice(_)) {
            return f(format!("{prev_id} is a red-letter request"));
        }
        if !matches!(prev.outcome, RequestOutcome::Failed { .. }) {
            return f(format!("{prev_id} did not fail"));
        }
        if let Some(by) = &prev.retried_by {
            return f(format!("{prev_id} was already retried by {by}"));
        }
        Ok(Ok(Some((prev_id.clone(), prev))))
    }

    /// Checks the lines of an invoice (`issue` holds the merchant's policy and the
    /// invoice type) or of a partial red-letter (`None`: its lines must name the
    /// original's lines, which `amounts::take_lines` checks and which give their short
    /// names, whatever rates are in force today). Per line, in order: quantity, price,
    /// classification code, rate.
    pub(super) fn validate_lines(
        &self,
        lines: &[LineItem],
        issue: Option<(&MerchantPolicy, InvoiceType)>,
    ) -> Result<amounts::Totals, Failure> {
        if lines.is_empty() {
            return Err(fail(FailureReason::NoLines, "lines", "the request has no lines"));
        }
        for (i, l) in lines.iter().enumerate() {
            if l.quantity.0 <= 0 {
                return Err(fail(
                    FailureReason::LineQuantityNotPositive,
                    format!("lines[{i}].quantity"),
                    format!("quantity is {}", l.quantity),
                ));
            }
            if !l.unit_price.is_positive() {
                return Err(fail(
                    FailureReason::LinePriceNotPositive,
                    format!("lines[{i}].unit_price"),
                    format!("unit price is {}", l.unit_price),
                ));
            }
            if let Some((policy, invoice_type)) = issue {
                self.check_line_tax(i, l, policy, invoice_type)?;
            }
        }
        let genesis = self.ctx.genesis;
        let short_name = |l: &LineItem| {
            genesis
                .classification(&l.tax_code)
                .map(|c| c.short_name.clone())
                .unwrap_or_default()
        };
        amounts::totals(lines, short_name)
            .ok_or_else(|| fail(FailureReason::AmountOverflow, "lines", "line amounts overflow"))
    }

    /// A line's classification code and rate against the consortium's table and the
    /// merchant's rate rules on the block's date (UTC+8).
    pub(super) fn check_line_tax(
        &self,
        i: usize,
        l: &LineItem,
        policy: &MerchantPolicy,
        invoice_type: InvoiceType,
    ) -> Result<(), Failure> {
        let why = if !tax::code_is_well_formed(&l.tax_code) {
            Some("is not 19 digits starting 1 to 9")
        } else if self.ctx.genesis.classification(&l.tax_code).is_none() {
            Some("is not in the consortium's classification table")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(fail(
                FailureReason::TaxCodeUnknown,
                format!("lines[{i}].tax_code"),
                format!("`{}` {why}", l.tax_code),
            ));
        }
        let field = format!("lines[{i}].tax_rate");
        let rules: Vec<&RateRule> = policy.rates.iter().filter(|r| r.rate == l.tax_rate).collect();
        if rules.is_empty() {
            let list: Vec<String> = policy.rates.iter().map(RateRule::describe).collect();
            return Err(fail(
                FailureReason::TaxRateNotAllowed,
                field,
                format!(
                    "{} is not in this merchant's policy; it has: {}",
                    l.tax_rate,
                    list.join(", ")
                ),
            ));
        }
        let date = self.block.timestamp.utc8_date();
        if !rules.iter().any(|r| r.in_force(date)) {
            let list: Vec<String> = rules.iter().map(|r| r.describe()).collect();
            return Err(fail(
                FailureReason::TaxRateNotInForce,
                field,
                format!(
                    "{} is not in force on {}: {}",
                    l.tax_rate,
                    tax::format_date(date),
                    list.join(", ")
                ),
            ));
        }
        if l.tax_rate == TaxRate::Exempt && invoice_type == InvoiceType::SpecialVat {
            return Err(fail(
                FailureReason::TaxRateNotAllowed,
                field,
                "an exempt (免税) sale cannot go on a special VAT invoice: issue an ordinary invoice",
            ));
        }
        Ok(())
    }

    /// `replaces` must name a blue invoice of this chain with a red-letter reversal, not
    /// replaced yet, that drew on every payment listed.
    pub(super) fn check_replaces(&self, r: &InvoiceRequested) -> Step<Result<Option<BlueInvoice>, Failure>, S::Error> {
        let Some(n) = r.replaces else {
            return Ok(Ok(None));
        };
        let f = |d: String| Ok(Err(fail(FailureReason::ReplacesInvalid, "replaces", d)));
        let blue = match self.state.invoice(&n)? {
            Some(InvoiceRecord::Blue(b)) if n.member() == self.ctx.chain => b,
            _ => return f(format!("{n} is not an issued invoice of this merchant")),
        };
        if blue.red_letters.is_empty() {
            return f(format!("{n} has no red-letter reversal: reverse it first"));
        }
        if let Some(by) = blue.replaced_by {
            return f(format!("{n} was already replaced by {by}"));
        }
        if let Some(p) = r
            .payment_ids
            .iter()
            .find(|p| !blue.issued.allocations.iter().any(|a| a.payment_id == **p))
        {
            return f(format!("{n} did not draw on payment {p}"));
        }
        Ok(Ok(Some(blue)))
    }

    /// Validates in the documented order; issues if everything passes. `cause` is the
    /// request's event id (the check code is derived from it).
    pub(super) fn validate_and_issue(
        &mut self,
        r: &InvoiceRequested,
        cause: EventId,
    ) -> Step<Result<InvoiceIssued, Failure>, S::Error> {
        let meta = self.meta()?;
        if let Err(f) = check_buyer(r, &meta.policy) {
            return Ok(Err(f));
        }
        let totals = match self.validate_lines(&r.lines, Some((&meta.policy, r.invoice_type))) {
            Ok(t) => t,
            Err(f) => return Ok(Err(f)),
        };
        let replaced = match self.check_replaces(r)? {
            Ok(b) => b,
            Err(f) => return Ok(Err(f)),
        };
        let available = match self.check_payments(r)? {
            Ok(a) => a,
            Err(f) => return Ok(Err(f)),
        };
        let Charges { quota, fee } = match self.check_totals(&totals, &available, &meta)? {
            Ok(q) => q,
            Err(f) => return Ok(Err(f)),
        };
        let issue = Issue {
            totals,
            available,
            quota,
            fee,
            replaced,
        };
        Ok(Ok(self.issue(r, cause, meta, issue)?))
    }

    /// The payments a request names, each with what is left to invoice: present, listed
    /// once, live, with something left, and not drawn on by too many invoices.
    fn check_payments<'r>(&self, r: &'r InvoiceRequested) -> Step<Result<Vec<Available<'r>>, Failure>, S::Error> {
        let mut seen = std::collections::BTreeSet::new();
        if r.payment_ids.is_empty() || !r.payment_ids.iter().all(|p| seen.insert(p.as_str())) {
            return Ok(Err(fail(
                FailureReason::PaymentsInvalid,
                "payment_ids",
                "list at least one payment, each once",
            )));
        }
        let mut available = Vec::with_capacity(r.payment_ids.len());
        for (i, pid) in r.payment_ids.iter().enumerate() {
            let field = format!("payment_ids[{i}]");
            let Some(p) = self.state.payment(pid)? else {
                return Ok(Err(fail(
                    FailureReason::PaymentNotFound,
                    field,
                    format!("payment {pid} is not recorded"),
                )));
            };
            if p.voided.is_some() {
                return Ok(Err(fail(
                    FailureReason::PaymentVoided,
                    field,
                    format!("payment {pid} was voided"),
                )));
            }
            let invoiced = self.state.payment_invoicing(pid)?.unwrap_or_default();
            let corrupt = || ExecError::Corrupt(StateKey::PaymentInvoicing(pid.clone()));
            let left = p.left_to_invoice(&invoiced).ok_or_else(corrupt)?;
            if !left.is_positive() {
                return Ok(Err(fail(
                    FailureReason::PaymentFullyInvoiced,
                    field,
                    format!(
                        "payment {pid} has nothing left to invoice (paid {}, refunded {}, invoiced {})",
                        p.recorded.amount, p.refunded, invoiced.invoiced
                    ),
                )));
            }
            if invoiced.invoices.len() >= INVOICES_PER_PAYMENT_MAX {
                return Ok(Err(fail(
                    FailureReason::PaymentInvoicesLimit,
                    field,
                    format!(
                        "payment {pid} is already drawn on by {} invoices, the most one payment may be",
                        invoiced.invoices.len()
                    ),
                )));
            }
            available.push(Available {
                pid: pid.as_str(),
                left,
                invoicing: invoiced,
            });
        }
        Ok(Ok(available))
    }

    /// The totals against what the payments cover and the merchant's limit, then the
    /// monthly quota and the fee balance. Answers the quota to update and the fee.
    fn check_totals(
        &self,
        totals: &amounts::Totals,
        available: &[Available<'_>],
        meta: &MerchantMeta,
    ) -> Step<Result<Charges, Failure>, S::Error> {
        // At most PAYMENTS_PER_INVOICE_MAX terms of at most AMOUNT_FEN_MAX each.
        let invoiceable = Fen::checked_sum(available.iter().map(|a| a.left)).ok_or(Rejection::Overflow("payments"))?;
        if totals.total > invoiceable {
            return Ok(Err(fail(
                FailureReason::TotalAboveInvoiceable,
                "lines",
                format!(
                    "total {} is above the {} the payments still cover",
                    totals.total, invoiceable
                ),
            )));
        }
        if totals.total > meta.policy.max_invoice_total {
            return Ok(Err(fail(
                FailureReason::TotalAboveMerchantLimit,
                "lines",
                format!(
                    "total {} is above this merchant's limit of {}",
                    totals.total, meta.policy.max_invoice_total
                ),
            )));
        }
        let quota = match self.check_quota(totals.total)? {
            Ok(q) => q,
            Err(f) => return Ok(Err(f)),
        };
        let fee = self.ctx.genesis.fee_per_invoice();
        if meta.fee_balance < fee {
            return Ok(Err(fail(
                FailureReason::FeeBalanceTooLow,
                "fee_balance",
                format!("fee balance {} is below the fee of {}", meta.fee_balance, fee),
            )));
        }

        Ok(Ok(Charges { quota, fee }))
    }

    /// Writes an invoice that passed every check: the quota, the number, the fee, the
    /// allocation over the payments (in the order listed), and the replaced invoice.
    // Long: the writes of one issue in the order they must happen (quota, number, fee, allocation, replaced
    // invoice, record); they share the checked figures.
    fn issue(
        &mut self,
        r: &InvoiceRequested,
        cause: EventId,
        meta: MerchantMeta,
        checked: Issue<'_>,
    ) -> Step<InvoiceIssued, S::Error> {
        let Issue {
            totals,
            available,
            quota,
            fee,
            replaced,
        } = checked;
        if let Some(mut q) = quota {
            // Within what is left of the grant (checked above).
            q.used = q.used.checked_add(totals.total).ok_or(Rejection::Overflow("quota"))?;
            self.state.put(StateKey::Quota, StateValue::Quota(q));
        }
        let mut meta = meta;
        let number = self.next_number(&mut meta)?;
        // The balance covers the fee (checked above).
        meta.fee_balance = meta
            .fee_balance
            .checked_sub(fee)
            .ok_or(Rejection::Overflow("fee_balance"))?;
        let remaining = amounts::by_rate(&totals.lines).ok_or(Rejection::Overflow("lines"))?;
        let mut allocations = Vec::new();
        let mut left = totals.total;
        for Available {
            pid,
            left: avail,
            invoicing: mut inv,
        } in available
        {
            if left.is_zero() {
                break;
            }
            // `take` is at most both `left` and `avail`, so neither subtraction nor the
            // addition (bounded by what the payment covers) can overflow.
            let take = avail.min(left);
            left = left.checked_sub(take).ok_or(Rejection::Overflow("allocation"))?;
            allocations.push(alloc(pid, take));
            inv.invoiced = inv.invoiced.checked_add(take).ok_or(Rejection::Overflow("invoiced"))?;
            inv.invoices.push(number);
            self.state.put(
                StateKey::PaymentInvoicing(pid.to_owned()),
                StateValue::PaymentInvoicing(inv),
            );
        }
        assert!(
            left.is_zero(),
            "allocation must cover the total: it was checked against the invoiceable amount"
        );
        let issued = InvoiceIssued {
            request_id: r.request_id.clone(),
            number,
            check_code: self.check_code(&number, cause),
            invoice_type: r.invoice_type,
            buyer: r.buyer.clone(),
            net: totals.net,
            tax: totals.tax,
            total: totals.total,
            fee,
            allocations: allocations.clone(),
            issued_at: self.block.timestamp,
            lines: totals.lines,
            replaces: r.replaces,
        };
        if let Some(mut old) = replaced {
            old.replaced_by = Some(number);
            self.state.put(
                StateKey::Invoice(old.issued.number),
                StateValue::Invoice(InvoiceRecord::Blue(old)),
            );
        }
        self.state.put(
            StateKey::Invoice(number),
            StateValue::Invoice(InvoiceRecord::Blue(BlueInvoice {
                remaining,
                standing: allocations,
                red_letters: Vec::new(),
                claim: None,
                replaced_by: None,
                booking: None,
                forms: Vec::new(),
                issued: issued.clone(),
            })),
        );
        self.state.put(StateKey::Meta, StateValue::Meta(meta));
        Ok(issued)
    }

    pub(super) fn next_number(&self, meta: &mut MerchantMeta) -> Step<InvoiceNumber, S::Error> {
        let year = self.block.timestamp.utc8_year().rem_euclid(100) as u8;
        let number = InvoiceNumber::new(year, self.ctx.chain, meta.next_sequence)
            .ok_or(Rejection::Overflow("invoice sequence"))?;
        meta.next_sequence += 1;
        Ok(number)
    }

    /// `H_check(canonical((network, number, request event id)))`, see `docs/FORMAT.md`.
    pub(super) fn check_code(&self, number: &InvoiceNumber, cause: EventId) -> CheckCode {
        let d = hash(Domain::CheckCode, &codec::to_bytes(&(self.ctx.network, number, cause)));
        CheckCode::from_digest(&d)
    }
}

/// A payment an invoice may draw on, with what is left of it to invoice.
struct Available<'r> {
    pid: &'r str,
    left: Fen,
    invoicing: PaymentInvoicing,
}

/// The monthly quota to update (if the merchant has one) and the fee to charge.
struct Charges {
    quota: Option<QuotaRecord>,
    fee: Fen,
}

/// What the checks found, for [`Exec::issue`].
struct Issue<'r> {
    totals: amounts::Totals,
    available: Vec<Available<'r>>,
    quota: Option<QuotaRecord>,
    fee: Fen,
    replaced: Option<BlueInvoice>,
}

/// The buyer against the invoice type: a name, a type the merchant may issue, a valid
/// tax id if one is given, and one at all on a special VAT invoice.
fn check_buyer(r: &InvoiceRequested, policy: &MerchantPolicy) -> Result<(), Failure> {
    if r.buyer.name.trim().is_empty() {
        return Err(fail(
            FailureReason::BuyerNameMissing,
            "buyer.name",
            "the buyer name is empty",
        ));
    }
    if !policy.permitted_types.contains(&r.invoice_type) {
        return Err(fail(
            FailureReason::InvoiceTypeNotPermitted,
            "invoice_type",
            format!("{} invoices are not permitted for this merchant", r.invoice_type.name()),
        ));
    }
    match &r.buyer.tax_id {
        Some(t) => {
            if let Err(e) = uscc::validate(t) {
                return Err(fail(
                    FailureReason::BuyerTaxIdInvalid,
                    "buyer.tax_id",
                    format!("{t}: {e}"),
                ));
            }
        }
        None if r.invoice_type == InvoiceType::SpecialVat => {
            return Err(fail(
                FailureReason::BuyerTaxIdRequired,
                "buyer.tax_id",
                "a special VAT invoice needs the buyer's tax id",
            ));
        }
        None => {}
    }
    Ok(())
}
