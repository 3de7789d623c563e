//! The operator's fee deposits and policy, and the tax office's quota grants.

use super::*;

#[derive(Subcommand)]
pub(crate) enum FeeCommand {
    /// Credit the merchant's invoicing fee balance (operator key).
    Deposit {
        /// Amount in yuan.
        #[arg(long)]
        amount: String,
        /// Deposit id (default: generated).
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum QuotaCommand {
    /// Grant (or adjust) the month's invoicing quota, tax included (tax office key).
    Grant {
        /// Amount in yuan.
        amount: String,
        /// The month, YYYYMM in UTC+8 (default: this month).
        #[arg(long)]
        month: Option<u32>,
    },
    /// Suspend the month's quota (tax office key).
    Suspend {
        /// The month, YYYYMM in UTC+8 (default: this month).
        #[arg(long)]
        month: Option<u32>,
    },
    /// Lift a suspension (tax office key).
    Resume {
        /// The month, YYYYMM in UTC+8 (default: this month).
        #[arg(long)]
        month: Option<u32>,
    },
    /// After the monthly filing: the month gets the amount last granted (tax office key).
    Revalidate {
        /// The month, YYYYMM in UTC+8 (default: this month).
        #[arg(long)]
        month: Option<u32>,
    },
    /// The quota on record: month, granted, used, left, suspended, waiting requests.
    Show,
}

/// `fapiao policy set`: the operator replaces a merchant's invoicing policy with an
/// operator-signed event on that merchant's chain.
pub(crate) fn policy_set(opts: &ClientOpts, types: &[String], max_total: &str, rates: &[String]) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    let key = ctx.key(ctx.profile.operator_key.as_deref(), "operator")?;
    let mut permitted_types = types
        .iter()
        .map(|t| InvoiceType::from_name(t).ok_or_else(|| anyhow!("--type {t}: normal or special_vat")))
        .collect::<Result<Vec<_>>>()?;
    permitted_types.sort();
    permitted_types.dedup();
    let mut rates = rates
        .iter()
        .map(|r| {
            r.parse::<fapiao_core::tax::RateRule>()
                .map_err(|e| anyhow!("--rate {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    fapiao_core::tax::canonical_rate_rules(&mut rates).map_err(|e| anyhow!("--rate: {e}"))?;
    let policy = MerchantPolicy {
        permitted_types,
        max_invoice_total: money(max_total, "--max-total")?,
        rates,
    };
    let (_, r) = ctx.submit(&key, EventKind::MerchantPolicySet(policy))?;
    ctx.print_submitted("policy", &r)
}

pub(crate) fn fee(opts: &ClientOpts, cmd: FeeCommand) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    match cmd {
        FeeCommand::Deposit { amount, id } => {
            let key = ctx.key(ctx.profile.operator_key.as_deref(), "operator")?;
            let id = id.unwrap_or_else(|| gen_id("DEP"));
            let (event, r) = ctx.submit(
                &key,
                EventKind::FeeDeposited(FeeDeposited {
                    deposit_id: id.clone(),
                    amount: money(&amount, "--amount")?,
                }),
            )?;
            ctx.print_submitted(&format!("fee deposit {id}"), &r)?;
            if r.height.is_some() {
                print_auto_reissues(&ctx, &event)?;
            }
            Ok(())
        }
    }
}

/// `fapiao quota`: the tax office's quota changes, signed with the profile's
/// `verifier_key` (the dev tax office), and the quota on record.
pub(crate) fn quota(opts: &ClientOpts, cmd: QuotaCommand) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    let this_month = || crate::now().utc8_month();
    let (month, action) = match cmd {
        QuotaCommand::Show => {
            let q = ctx.client.quota()?;
            if ctx.opts.json {
                println!("{}", serde_json::to_string_pretty(&q)?);
            } else if !q.under_quota {
                println!("not under quota: no tax office has granted this merchant one");
            } else {
                println!(
                    "quota {}{}: granted {}  used {}  left {}{}",
                    q.month.unwrap_or(0),
                    if q.valid {
                        ""
                    } else {
                        " (EXPIRED: this month has none yet)"
                    },
                    Fen::from_fen(q.granted_fen),
                    Fen::from_fen(q.used_fen),
                    Fen::from_fen(q.left_fen),
                    if q.suspended { "  SUSPENDED" } else { "" }
                );
                println!("{} request(s) wait for quota", q.waiting_requests);
            }
            return Ok(());
        }
        QuotaCommand::Grant { amount, month } => (month, QuotaAction::Grant(money(&amount, "AMOUNT")?)),
        QuotaCommand::Suspend { month } => (month, QuotaAction::Suspend),
        QuotaCommand::Resume { month } => (month, QuotaAction::Resume),
        QuotaCommand::Revalidate { month } => (month, QuotaAction::Revalidate),
    };
    let key = ctx.key(ctx.profile.verifier_key.as_deref(), "tax office (verifier_key)")?;
    let month = month.unwrap_or_else(this_month);
    let (event, r) = ctx.submit(&key, EventKind::QuotaChanged(QuotaChange { month, action }))?;
    ctx.print_submitted(&format!("quota {} for {month}", action.name()), &r)?;
    if r.height.is_some() {
        print_auto_reissues(&ctx, &event)?;
    }
    Ok(())
}

/// The requests a fee deposit or a quota change re-ran (the derived entries right after
/// it in its block).
/// The automatic re-issues the event `event` ran (a fee deposit or a quota change), from
/// its public outcome: no read token needed, so a tax office's profile sees them too.
pub(super) fn print_auto_reissues(ctx: &Ctx, event: &EventId) -> Result<()> {
    if ctx.opts.json {
        return Ok(());
    }
    use fapiao_api::dto::DerivedDataDto;
    for d in ctx.client.event_outcome(event)?.derived {
        match d.derived {
            DerivedDataDto::InvoiceIssued(i) => println!(
                "re-issued automatically: request {} -> invoice {}",
                i.request_id, i.number
            ),
            DerivedDataDto::InvoiceFailed(f) => println!(
                "re-run automatically: request {} now FAILED {} ({})",
                f.request_id, f.reason, f.detail
            ),
            _ => {}
        }
    }
    Ok(())
}
