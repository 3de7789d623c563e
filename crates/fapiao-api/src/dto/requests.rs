//! Invoice requests, their failures and the failure catalogue.

use super::*;
use fapiao_core::event::FailureReason;

/// A failure reason with its catalogue entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FailureInfoDto {
    /// Stable code.
    #[schema(schema_with = failure_codes_schema)]
    pub code: String,
    /// Whether the unchanged request can succeed later.
    pub retryable: bool,
    /// What the merchant should do.
    pub remedy: String,
    /// The field at fault.
    pub field: String,
    /// Specifics.
    pub detail: String,
}

/// What issued a blocked request automatically: a fee deposit (for FEE_BALANCE_TOO_LOW)
/// or a tax office's quota change (for QUOTA_EXCEEDED, QUOTA_EXPIRED, QUOTA_SUSPENDED).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct AutoReissueDto {
    /// `fee_deposit` or `quota`.
    #[schema(schema_with = reissue_triggers_schema)]
    pub trigger: String,
    /// The deposit id, for a fee deposit.
    pub deposit_id: Option<String>,
    /// The quota's month (`YYYYMM`, UTC+8), for a quota change.
    pub quota_month: Option<u32>,
    /// The event that made room.
    pub event_id: String,
    /// Block time of that event (and of the issue).
    pub at_ms: u64,
}

/// A request and its outcome.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RequestDto {
    /// The request id.
    pub request_id: String,
    /// `invoice` or `red_letter`.
    #[schema(schema_with = request_kinds_schema)]
    pub kind: String,
    /// Block time.
    pub requested_at_ms: u64,
    /// The request event.
    pub event_id: String,
    /// `issued`, `reversed`, `awaiting_confirmation` (a red-letter request whose form
    /// waits for the buyer) or `failed`.
    #[schema(schema_with = request_outcomes_schema)]
    pub outcome: String,
    /// The invoice issued (or red-letter number).
    pub invoice_number: Option<String>,
    /// The failure, if failed.
    pub failure: Option<FailureInfoDto>,
    /// The request it retried.
    pub retry_of: Option<String>,
    /// The request that retried it.
    pub retried_by: Option<String>,
    /// Set when it first failed for the fee balance and a fee deposit issued it.
    pub auto_reissue: Option<AutoReissueDto>,
    /// The request itself (buyer, lines, payments, type), so a client can re-issue it
    /// with corrections.
    pub request: RequestBodyDto,
    /// A red-letter request that waits for the buyer's confirmation: the form it
    /// opened, `INVOICE/FORM`.
    pub red_form: Option<String>,
}

impl RequestDto {
    /// From a request record.
    pub fn new(id: &str, r: &RequestRecord) -> Self {
        let (kind, retry_of) = match &r.body {
            RequestBody::Invoice(i) => ("invoice", i.retry_of.clone()),
            RequestBody::RedLetter(_) => ("red_letter", None),
        };
        let (outcome, number, failure) = match &r.outcome {
            RequestOutcome::Issued(n) => ("issued", Some(n.to_string()), None),
            RequestOutcome::Reversed(n) => ("reversed", Some(n.to_string()), None),
            RequestOutcome::AwaitingConfirmation(_) => ("awaiting_confirmation", None, None),
            RequestOutcome::Failed { reason, field, detail } => {
                let info = catalogue::info(*reason);
                (
                    "failed",
                    None,
                    Some(FailureInfoDto {
                        code: info.code.into(),
                        retryable: info.retryable,
                        remedy: info.remedy.into(),
                        field: field.clone(),
                        detail: detail.clone(),
                    }),
                )
            }
        };
        RequestDto {
            request_id: id.into(),
            kind: kind.into(),
            requested_at_ms: r.requested_at.0,
            event_id: r.event.to_string(),
            outcome: outcome.into(),
            invoice_number: number,
            failure,
            retry_of,
            retried_by: r.retried_by.clone(),
            auto_reissue: r.auto_reissue.as_ref().map(|a| AutoReissueDto {
                trigger: match a.trigger {
                    ReissueTrigger::Deposit(_) => "fee_deposit",
                    ReissueTrigger::Quota(_) => "quota",
                }
                .into(),
                deposit_id: match &a.trigger {
                    ReissueTrigger::Deposit(d) => Some(d.clone()),
                    ReissueTrigger::Quota(_) => None,
                },
                quota_month: match a.trigger {
                    ReissueTrigger::Quota(m) => Some(m),
                    ReissueTrigger::Deposit(_) => None,
                },
                event_id: a.event.to_string(),
                at_ms: a.at.0,
            }),
            request: (&r.body).into(),
            red_form: match (&r.body, &r.outcome) {
                (RequestBody::RedLetter(rl), RequestOutcome::AwaitingConfirmation(form)) => {
                    Some(format!("{}/{form}", rl.invoice_number))
                }
                _ => None,
            },
        }
    }
}

/// A request with the requests it retried and that retried it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RequestHistoryDto {
    /// The request asked for.
    pub request_id: String,
    /// Oldest first.
    pub history: Vec<RequestDto>,
}

/// A failed request in the failures list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FailureDto {
    /// The request.
    pub request_id: String,
    /// Code.
    #[schema(schema_with = failure_codes_schema)]
    pub code: String,
    /// Retryable unchanged.
    pub retryable: bool,
    /// What to do.
    pub remedy: String,
    /// Field at fault.
    pub field: String,
    /// Specifics.
    pub detail: String,
    /// Block time.
    pub requested_at_ms: u64,
    /// The request that retried it.
    pub retried_by: Option<String>,
    /// The invoice its retries ended in.
    pub resolved_by_invoice: Option<String>,
}

impl From<&FailureRow> for FailureDto {
    fn from(f: &FailureRow) -> Self {
        let info = catalogue::info(f.reason);
        FailureDto {
            request_id: f.request_id.clone(),
            code: info.code.into(),
            retryable: info.retryable,
            remedy: info.remedy.into(),
            field: f.field.clone(),
            detail: f.detail.clone(),
            requested_at_ms: f.record.requested_at.0,
            retried_by: f.record.retried_by.clone(),
            resolved_by_invoice: f.resolved_by.as_ref().map(|(_, n)| n.to_string()),
        }
    }
}

/// Failed requests and their counts by code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FailureListDto {
    /// The failures.
    pub failures: Vec<FailureDto>,
    /// Count per code, over this page.
    pub counts: std::collections::BTreeMap<String, u64>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One catalogue entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CatalogueEntryDto {
    /// Code.
    #[schema(schema_with = failure_codes_schema)]
    pub code: String,
    /// Retryable unchanged.
    pub retryable: bool,
    /// What went wrong.
    pub cause: String,
    /// Remedy.
    pub remedy: String,
}

impl From<&catalogue::FailureInfo> for CatalogueEntryDto {
    fn from(i: &catalogue::FailureInfo) -> Self {
        CatalogueEntryDto {
            code: i.code.into(),
            retryable: i.retryable,
            cause: i.cause.into(),
            remedy: i.remedy.into(),
        }
    }
}

pub(super) fn reissue_triggers_schema() -> utoipa::openapi::Object {
    closed_set(["fee_deposit", "quota"], false)
}

pub(super) fn request_kinds_schema() -> utoipa::openapi::Object {
    closed_set(["invoice", "red_letter"], false)
}

pub(super) fn request_outcomes_schema() -> utoipa::openapi::Object {
    closed_set(["issued", "reversed", "awaiting_confirmation", "failed"], false)
}

pub(super) fn failure_codes_schema() -> utoipa::openapi::Object {
    closed_set(FailureReason::ALL.map(|r| catalogue::info(r).code), false)
}
