//! Payments: record, refund and void. A payment event either applies or is rejected;
//! nothing about invoicing is ever written here.

use super::*;

impl<S: StateRead> Exec<'_, '_, '_, '_, S> {
    pub(super) fn record_payment(&mut self, p: &PaymentRecorded) -> Step<(), S::Error> {
        if self.state.payment(&p.payment_id)?.is_some() {
            return Err(Rejection::DuplicatePaymentId(p.payment_id.clone()).into());
        }
        self.state.put(
            StateKey::Payment(p.payment_id.clone()),
            StateValue::Payment(PaymentRecord {
                recorded: p.clone(),
                event: self.id,
                recorded_at: self.block.timestamp,
                refunded: Fen::ZERO,
                refund_ids: Vec::new(),
                voided: None,
            }),
        );
        Ok(())
    }

    pub(super) fn live_payment(&self, payment_id: &str) -> Step<PaymentRecord, S::Error> {
        let p = self
            .state
            .payment(payment_id)?
            .ok_or_else(|| Rejection::PaymentUnknown(payment_id.to_owned()))?;
        if p.voided.is_some() {
            return Err(Rejection::PaymentAlreadyVoided(payment_id.to_owned()).into());
        }
        Ok(p)
    }

    pub(super) fn refund(&mut self, r: &PaymentRefunded) -> Step<(), S::Error> {
        if self.state.refund(&r.refund_id)?.is_some() {
            return Err(Rejection::DuplicateRefundId(r.refund_id.clone()).into());
        }
        let mut p = self.live_payment(&r.payment_id)?;
        // A refund is a payment fact: it is recorded even when the payment is invoiced
        // (the payment record never depends on invoicing). Reconciliation then shows
        // the invoice as needing a red-letter reversal.
        let refundable = p
            .net_paid()
            .ok_or_else(|| ExecError::Corrupt(StateKey::Payment(r.payment_id.clone())))?;
        if r.amount > refundable {
            return Err(Rejection::RefundExceedsRefundable {
                payment_id: r.payment_id.clone(),
                refundable,
            }
            .into());
        }
        if p.refund_ids.len() >= REFUNDS_PER_PAYMENT_MAX {
            return Err(Rejection::LimitReached {
                field: "payment_id".into(),
                detail: format!(
                    "payment {} already has {REFUNDS_PER_PAYMENT_MAX} refunds, the most one payment may have",
                    r.payment_id
                ),
            }
            .into());
        }
        // Within the refundable amount, so at most the payment's amount.
        p.refunded = p
            .refunded
            .checked_add(r.amount)
            .ok_or(Rejection::Overflow("refunded"))?;
        p.refund_ids.push(r.refund_id.clone());
        self.state
            .put(StateKey::Payment(r.payment_id.clone()), StateValue::Payment(p));
        self.state.put(
            StateKey::Refund(r.refund_id.clone()),
            StateValue::Refund(RefundRecord {
                payment_id: r.payment_id.clone(),
                amount: r.amount,
                event: self.id,
            }),
        );
        Ok(())
    }

    pub(super) fn void(&mut self, r: &PaymentVoided) -> Step<(), S::Error> {
        let mut p = self.live_payment(&r.payment_id)?;
        if let Some(inv) = self.state.payment_invoicing(&r.payment_id)? {
            if inv.invoiced.is_positive() {
                let mut covering = Vec::new();
                for n in &inv.invoices {
                    if let Some(InvoiceRecord::Blue(b)) = self.state.invoice(n)? {
                        if b.standing
                            .iter()
                            .any(|a| a.payment_id == r.payment_id && a.amount.is_positive())
                        {
                            covering.push(*n);
                        }
                    }
                }
                return Err(Rejection::PaymentInvoiced {
                    payment_id: r.payment_id.clone(),
                    invoices: covering,
                }
                .into());
            }
        }
        p.voided = Some(PaymentVoid {
            event: self.id,
            at: self.block.timestamp,
            reason: r.reason.clone(),
        });
        self.state
            .put(StateKey::Payment(r.payment_id.clone()), StateValue::Payment(p));
        Ok(())
    }
}
