//! The fee and the monthly quota: requests blocked by either wait in a queue and are
//! re-issued automatically when a deposit or a quota grant makes room.

use super::*;

impl<S: StateRead> Exec<'_, '_, '_, '_, S> {
    /// Queues a request that failed for the fee or the quota, to be issued
    /// automatically when room comes; says so (or why not) in the failure's detail.
    pub(super) fn enqueue_blocked(&mut self, request_id: &str, f: &mut Failure) -> Step<(), S::Error> {
        let Some(kind) = Blocked::of(f.reason) else {
            return Ok(());
        };
        let mut queue = self.state.blocked(kind)?;
        if queue.requests.len() < FEE_BLOCKED_MAX {
            queue.requests.push(request_id.to_owned());
            self.state.put(kind.key(), kind.value(queue));
            f.detail.push_str(&format!("; {}", kind.waiting()));
        } else {
            f.detail.push_str(&format!(
                "; not queued for automatic re-issue ({FEE_BLOCKED_MAX} requests already wait): retry it later"
            ));
        }
        Ok(())
    }

    /// Re-runs the requests blocked by `kind`, oldest first, after `trigger` made room:
    /// each is issued (or fails for a reason that arose meanwhile, and waits in the other
    /// queue if that reason is the other kind of room) until one fails for `kind` again
    /// (it stays at the front) or the block's automatic re-issue budget is spent.
    /// Derived events name their request as the cause and sit right after the trigger.
    pub(super) fn reissue_blocked(&mut self, kind: Blocked, trigger: ReissueTrigger) -> Step<Vec<Derived>, S::Error> {
        let queue = self.state.blocked(kind)?;
        let fee = self.ctx.genesis.fee_per_invoice();
        let mut derived = Vec::new();
        let mut done = 0;
        let by = match &trigger {
            ReissueTrigger::Deposit(d) => format!("deposit {d}"),
            ReissueTrigger::Quota(m) => format!("the quota change for {m}"),
        };
        for request_id in &queue.requests {
            if (kind == Blocked::Fee && self.meta()?.fee_balance < fee)
                || self.state.auto_bytes() >= AUTO_REISSUE_BYTES_MAX
            {
                break;
            }
            let Some(mut record) = self.state.request(request_id)? else {
                return Err(Stop::Exec(ExecError::Corrupt(StateKey::Request(request_id.clone()))));
            };
            let RequestBody::Invoice(r) = &record.body else {
                return Err(Stop::Exec(ExecError::Corrupt(StateKey::Request(request_id.clone()))));
            };
            let r = r.clone();
            let kind_of = |f: &Failure| Blocked::of(f.reason);
            let derived_kind = match self.validate_and_issue(&r, record.event)? {
                Err(f) if kind_of(&f) == Some(kind) => break,
                Ok(issued) => {
                    record.outcome = RequestOutcome::Issued(issued.number);
                    record.auto_reissue = Some(AutoReissue {
                        trigger: trigger.clone(),
                        event: self.id,
                        at: self.block.timestamp,
                    });
                    DerivedKind::InvoiceIssued(issued)
                }
                Err(mut f) => {
                    f.detail = format!("{}; found when {by} re-ran the request", f.detail);
                    self.enqueue_blocked(request_id, &mut f)?;
                    let (outcome, derived) = f.recorded(request_id);
                    record.outcome = outcome;
                    derived
                }
            };
            let one = Derived {
                cause: record.event,
                kind: derived_kind,
            };
            self.state.add_auto_bytes(codec::to_bytes(&one).len());
            derived.push(one);
            self.state
                .put(StateKey::Request(request_id.clone()), StateValue::Request(record));
            done += 1;
        }
        if done > 0 {
            // Re-read: a request that failed for the other kind joined the other queue,
            // never this one.
            let mut now = self.state.blocked(kind)?;
            now.requests.drain(..done);
            self.state.put(kind.key(), kind.value(now));
        }
        Ok(derived)
    }

    /// The month's quota must be valid, not suspended and cover `total`; `Ok(None)` for
    /// a merchant not under quota (no grant ever recorded).
    pub(super) fn check_quota(&self, total: Fen) -> Step<Result<Option<QuotaRecord>, Failure>, S::Error> {
        let Some(q) = self.state.quota()? else {
            return Ok(Ok(None));
        };
        let month = self.block.timestamp.utc8_month();
        if q.month != month {
            return Ok(Err(fail(
                FailureReason::QuotaExpired,
                "quota",
                format!(
                    "the quota of {} ended with its month; {month} has none yet (granted or re-validated)",
                    q.month
                ),
            )));
        }
        if q.suspended {
            return Ok(Err(fail(
                FailureReason::QuotaSuspended,
                "quota",
                format!("the quota of {month} is suspended by the tax office"),
            )));
        }
        if total > q.left() {
            return Ok(Err(fail(
                FailureReason::QuotaExceeded,
                "quota",
                format!(
                    "total {total} is above the {} left of the {} quota of {month} ({} used)",
                    q.left(),
                    q.granted,
                    q.used
                ),
            )));
        }
        Ok(Ok(Some(q)))
    }

    /// A tax office's quota change, for the block's month only; then the requests that
    /// wait for quota are re-run when it made room.
    // Long: the quota change's checks, then one arm per quota action, then the automatic re-issues it makes room
    // for.
    pub(super) fn change_quota(&mut self, c: &QuotaChange, by: MemberCode) -> Step<Vec<Derived>, S::Error> {
        let month = self.block.timestamp.utc8_month();
        if c.month != month {
            return Err(invalid(
                "month",
                format!("this block is in {month} (UTC+8): a quota is for the month it is recorded in, never carried"),
            )
            .into());
        }
        let at = self.block.timestamp;
        let current = self.state.quota()?;
        let this_month = current.clone().filter(|q| q.month == month);
        let refused = |detail: String| -> Step<Vec<Derived>, S::Error> { Err(invalid("action", detail).into()) };
        let record = match (c.action, this_month, current) {
            (QuotaAction::Grant(granted), Some(q), _) if granted < q.used => {
                return refused(format!(
                    "{} of the {month} quota is already used: grant at least that, or suspend the quota",
                    q.used
                ))
            }
            (QuotaAction::Grant(granted), Some(q), _) => QuotaRecord {
                granted,
                by,
                changed_at: at,
                ..q
            },
            // A new month starts from nothing used; a suspension stays until resumed.
            (QuotaAction::Grant(granted), None, previous) => QuotaRecord {
                month,
                granted,
                used: Fen::ZERO,
                suspended: previous.is_some_and(|p| p.suspended),
                by,
                changed_at: at,
            },
            (QuotaAction::Suspend | QuotaAction::Resume, Some(q), _) => QuotaRecord {
                suspended: c.action == QuotaAction::Suspend,
                by,
                changed_at: at,
                ..q
            },
            (QuotaAction::Suspend | QuotaAction::Resume, None, _) => {
                return refused(format!(
                    "{month} has no quota to suspend or resume: grant or re-validate it first"
                ))
            }
            (QuotaAction::Revalidate, Some(_), _) => return refused(format!("the quota of {month} is already valid")),
            (QuotaAction::Revalidate, None, Some(previous)) => QuotaRecord {
                month,
                granted: previous.granted,
                used: Fen::ZERO,
                suspended: previous.suspended,
                by,
                changed_at: at,
            },
            (QuotaAction::Revalidate, None, None) => {
                return refused("nothing to re-validate: this merchant was never granted a quota".into())
            }
        };
        // A month that ended keeps its final figures (red invoices of later months give
        // back to their own month), for reconciliation.
        if let Some(previous) = self.state.quota()?.filter(|q| q.month != month) {
            self.state
                .put(StateKey::QuotaMonth(previous.month), StateValue::QuotaMonth(previous));
        }
        let room = !record.suspended && record.left().is_positive();
        self.state.put(StateKey::Quota, StateValue::Quota(record));
        if room {
            self.reissue_blocked(Blocked::Quota, ReissueTrigger::Quota(month))
        } else {
            Ok(vec![])
        }
    }

    pub(super) fn deposit(&mut self, d: &FeeDeposited) -> Step<(), S::Error> {
        if self.state.deposit(&d.deposit_id)?.is_some() {
            return Err(Rejection::DuplicateDepositId(d.deposit_id.clone()).into());
        }
        let mut meta = self.meta()?;
        // The balance stays within the amount bound like every other amount.
        meta.fee_balance = match meta.fee_balance.checked_add(d.amount) {
            Some(b) if b <= Fen::MAX => b,
            _ => {
                return Err(Rejection::LimitReached {
                    field: "amount".into(),
                    detail: format!(
                        "the fee balance {} plus {} would be above the most any amount may be ({})",
                        meta.fee_balance,
                        d.amount,
                        Fen::MAX
                    ),
                }
                .into())
            }
        };
        self.state.put(StateKey::Meta, StateValue::Meta(meta));
        self.state.put(
            StateKey::Deposit(d.deposit_id.clone()),
            StateValue::Deposit(DepositRecord {
                amount: d.amount,
                event: self.id,
            }),
        );
        Ok(())
    }
}
