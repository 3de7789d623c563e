//! Writes and their outcomes.

use super::*;

/// Every error answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ApiError {
    /// Stable code, e.g. `BAD_SIGNATURE`; each is always served with the same status.
    #[schema(schema_with = error_code_schema)]
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The offending field, if one.
    pub field: Option<String>,
}

/// Submit one signed event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// The event's canonical bytes (see docs/FORMAT.md), hex.
    pub event: String,
}

/// Submit several signed events.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBatchRequest {
    /// Canonical bytes of each event, hex.
    pub events: Vec<String>,
}

/// The outcome of one submitted event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct SubmitResult {
    /// The event id, hex.
    pub event_id: String,
    /// `pending`, `committed` or `rejected`.
    #[schema(schema_with = submit_states_schema)]
    pub status: String,
    /// The block height when committed.
    pub height: Option<u64>,
    /// True when the same event was submitted before: nothing new was stored and this is
    /// its original outcome.
    pub duplicate: bool,
    /// For `rejected`: the code.
    #[schema(schema_with = rejection_codes_schema)]
    pub code: Option<String>,
    /// For `rejected`: why.
    pub message: Option<String>,
}

/// One element of a batch answer: a result or an error.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct BatchItemResult {
    /// The result, when admitted (or a duplicate).
    pub ok: Option<SubmitResult>,
    /// The error, when refused.
    pub error: Option<ApiError>,
}

/// A batch answer, in submission order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchResponse {
    /// One per submitted event.
    pub results: Vec<BatchItemResult>,
    /// Events admitted or already known.
    pub accepted: usize,
    /// Events refused.
    pub refused: usize,
}

/// An event's status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct EventStatusDto {
    /// The event id.
    pub event_id: String,
    /// `pending`, `committed`, `certified` or `rejected`.
    #[schema(schema_with = event_states_schema)]
    pub status: String,
    /// Block height.
    pub height: Option<u64>,
    /// Entry index in the block.
    pub index: Option<u32>,
    /// For `rejected`: code.
    #[schema(schema_with = rejection_codes_schema)]
    pub code: Option<String>,
    /// For `rejected`: why.
    pub message: Option<String>,
    /// For `rejected`: field.
    pub field: Option<String>,
}

/// What recording an event derived: public, for the event's author (the event id is the
/// credential), so a POS terminal or a verifier member learns its outcome without any
/// read token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct EventOutcomeDto {
    /// The event id.
    pub event_id: String,
    /// The event's block.
    pub height: u64,
    /// Its index in the block.
    pub index: u32,
    /// Whether the block is certified (final).
    pub certified: bool,
    /// The derived entries executing it produced, in block order, as in a block except
    /// that a claim refused as already claimed does not name the first claimant: for an invoice request its issue or failure, for a claim its record
    /// or refusal, for a fee deposit or a quota change the automatic re-issues it ran;
    /// empty for a payment.
    pub derived: Vec<DerivedEntryDto>,
}

/// The error codes as the document's enum, generated from [`ErrorCode::ALL`] so the two
/// cannot differ.
pub(super) fn error_code_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str())))
        .build()
}

pub(super) fn submit_states_schema() -> utoipa::openapi::Object {
    closed_set(["pending", "committed", "rejected"], false)
}

pub(super) fn event_states_schema() -> utoipa::openapi::Object {
    closed_set(["pending", "committed", "certified", "rejected"], false)
}

/// Why an admitted event was dropped when its block was built: one of the error codes.
pub(super) fn rejection_codes_schema() -> utoipa::openapi::Object {
    closed_set(ErrorCode::ALL.iter().map(|c| c.as_str()), true)
}
