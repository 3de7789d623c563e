//! Payment writes: record, refund, void.

use super::*;

pub(crate) fn pay(
    opts: &ClientOpts,
    amount: &str,
    method: &str,
    id: Option<String>,
    terminal: String,
    reference: String,
) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    let method = PaymentMethod::from_name(method)
        .ok_or_else(|| anyhow!("--method: one of card, alipay, wechat, huabei, unionpay_qr, cash"))?;
    let id = id.unwrap_or_else(|| gen_id("PAY"));
    let key = ctx.client_key()?;
    let (_, r) = ctx.submit(
        &key,
        EventKind::PaymentRecorded(PaymentRecorded {
            payment_id: id.clone(),
            amount: money(amount, "--amount")?,
            currency: Currency::Cny,
            method,
            terminal_id: terminal,
            external_ref: reference,
        }),
    )?;
    ctx.print_submitted(&format!("payment {id}"), &r)
}

pub(crate) fn refund(
    opts: &ClientOpts,
    payment: String,
    amount: &str,
    id: Option<String>,
    reason: String,
) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    let id = id.unwrap_or_else(|| gen_id("REF"));
    let key = ctx.client_key()?;
    let (_, r) = ctx.submit(
        &key,
        EventKind::PaymentRefunded(PaymentRefunded {
            payment_id: payment,
            refund_id: id.clone(),
            amount: money(amount, "--amount")?,
            reason,
        }),
    )?;
    ctx.print_submitted(&format!("refund {id}"), &r)
}

pub(crate) fn void(opts: &ClientOpts, payment: String, reason: String) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    let key = ctx.client_key()?;
    let (_, r) = ctx.submit(
        &key,
        EventKind::PaymentVoided(PaymentVoided {
            payment_id: payment.clone(),
            reason,
        }),
    )?;
    ctx.print_submitted(&format!("void of payment {payment}"), &r)
}
