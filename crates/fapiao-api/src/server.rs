//! The HTTP server: routes, bearer-token reads, JSON errors, body limits.

use crate::dto::*;
use crate::verify::{check, CheckFailed, Checked, DailyChecks, VerifyQuery};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fapiao_core::{EventId, Hash32, InvoiceNumber};
use fapiao_engine::{AdmitError, AdmitOutcome, AdmitStatus, Engine, EventStatus};
use serde::Deserialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use utoipa::OpenApi;

/// Server settings.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Bearer token for reads that expose business data.
    pub read_token: String,
    /// Largest request body, bytes.
    pub body_bytes_max: usize,
    /// Largest page of a list.
    pub page_max: usize,
    /// Times one invoice may be verified per day (UTC+8) on this node.
    pub verify_checks_per_day: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            read_token: String::new(),
            body_bytes_max: 4 * 1024 * 1024,
            page_max: 1000,
            verify_checks_per_day: 5,
        }
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) engine: Engine,
    pub(crate) config: Arc<ApiConfig>,
    pub(crate) limiter: Arc<RateLimiter>,
    pub(crate) checks: Arc<std::sync::Mutex<DailyChecks>>,
}

/// Public verification requests per client address and second.
pub(crate) const VERIFY_PER_SECOND_MAX: u32 = 20;
/// Client addresses tracked by the limiter; beyond it, past seconds' windows are dropped
/// and, if the current second alone fills it, a new address is refused for that second.
const LIMITER_ADDRESSES_MAX: usize = 100_000;

/// A fixed-window rate limiter per client address, for the public verification endpoint.
#[derive(Default)]
pub(crate) struct RateLimiter {
    windows: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (u64, u32)>>,
}

impl RateLimiter {
    /// Whether `ip` may make one more request in the current second.
    pub(crate) fn allow(&self, ip: std::net::IpAddr) -> bool {
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if w.len() >= LIMITER_ADDRESSES_MAX && !w.contains_key(&ip) {
            // Windows of past seconds are spent: drop them. Clearing everything instead
            // would let a client that rotates addresses reset everyone's window.
            w.retain(|_, (s, _)| *s == second);
            if w.len() >= LIMITER_ADDRESSES_MAX {
                // This many distinct addresses within one second: a newcomer waits.
                return false;
            }
        }
        let e = w.entry(ip).or_insert((second, 0));
        if e.0 != second {
            *e = (second, 0);
        }
        e.1 += 1;
        e.1 <= VERIFY_PER_SECOND_MAX
    }
}

/// An error answer.
pub(crate) struct Failure(StatusCode, ApiError);

impl Failure {
    fn new(status: StatusCode, code: &str, message: impl Into<String>, field: Option<&str>) -> Self {
        Failure(
            status,
            ApiError {
                code: code.into(),
                message: message.into(),
                field: field.map(Into::into),
            },
        )
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        // Maintenance lasts minutes, and freeing disk takes an operator: tell clients to
        // back off longer than for a busy node.
        let retry = match self.1.code.as_str() {
            "MAINTENANCE" => "30",
            "STORAGE_FULL" => "10",
            "OWN_CHAIN_BEHIND" => "5",
            _ => "1",
        };
        let mut r = (self.0, Json(self.1)).into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static(retry));
        }
        r
    }
}

fn internal(e: impl std::fmt::Display) -> Failure {
    tracing::error!(error = %e, "request failed inside the node");
    Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string(), None)
}

/// A read that failed in storage: damage to what was asked for (the node refuses to
/// serve a record that fails its integrity check) is `STORE_DAMAGED`, naming the repair;
/// anything else is `INTERNAL`.
fn store(e: fapiao_store::StoreError) -> Failure {
    if e.is_damage() || matches!(e, fapiao_store::StoreError::Inconsistent { .. }) {
        tracing::error!(error = %e, "refused to serve a damaged record");
        return Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "STORE_DAMAGED", e.to_string(), None);
    }
    internal(e)
}

fn json_rejection(r: JsonRejection) -> Failure {
    let status = r.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return Failure::new(status, "BODY_TOO_LARGE", r.body_text(), None);
    }
    if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return Failure::new(
            status,
            "UNSUPPORTED_MEDIA_TYPE",
            "send Content-Type: application/json",
            None,
        );
    }
    // Name the field when serde says which.
    let text = r.body_text();
    let field = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|p| text.split_once(p))
        .and_then(|(_, rest)| rest.split('`').next())
        .map(str::to_string);
    Failure(
        StatusCode::BAD_REQUEST,
        ApiError {
            code: "MALFORMED_JSON".into(),
            message: text,
            field,
        },
    )
}

fn admit_status(e: &AdmitError) -> StatusCode {
    match e {
        AdmitError::Malformed(_) | AdmitError::WrongNetwork { .. } | AdmitError::WrongChain { .. } => {
            StatusCode::BAD_REQUEST
        }
        AdmitError::TooLarge { .. } | AdmitError::BatchTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        AdmitError::BadSignature(_) => StatusCode::UNAUTHORIZED,
        AdmitError::Unauthorized { .. } | AdmitError::NoChain => StatusCode::FORBIDDEN,
        AdmitError::Conflict { .. } => StatusCode::CONFLICT,
        AdmitError::Busy { .. }
        | AdmitError::Unavailable(_)
        | AdmitError::Maintenance
        | AdmitError::StorageFull { .. }
        | AdmitError::OwnChainBehind(_) => StatusCode::SERVICE_UNAVAILABLE,
        AdmitError::Invalid(_) => StatusCode::BAD_REQUEST,
    }
}

fn admit_error(e: &AdmitError) -> ApiError {
    ApiError {
        code: e.code().into(),
        message: e.to_string(),
        field: e.field(),
    }
}

fn submit_result(o: &AdmitOutcome) -> SubmitResult {
    let (status, height, code, message) = match &o.status {
        AdmitStatus::Pending => ("pending", None, None, None),
        AdmitStatus::Committed { height } => ("committed", Some(*height), None, None),
        AdmitStatus::Rejected { code, message } => ("rejected", None, Some(code.clone()), Some(message.clone())),
    };
    SubmitResult {
        event_id: o.event_id.to_string(),
        status: status.into(),
        height,
        duplicate: o.duplicate,
        code,
        message,
    }
}

fn decode_hex(i: Option<usize>, s: &str, limit: usize) -> Result<Vec<u8>, Failure> {
    let field = match i {
        Some(i) => format!("events[{i}]"),
        None => "event".into(),
    };
    if s.len() > limit * 2 {
        return Err(Failure(
            StatusCode::PAYLOAD_TOO_LARGE,
            ApiError {
                code: "EVENT_TOO_LARGE".into(),
                message: format!("event is over {limit} bytes"),
                field: Some(field),
            },
        ));
    }
    hex::decode(s.trim()).map_err(|e| {
        Failure(
            StatusCode::BAD_REQUEST,
            ApiError {
                code: "MALFORMED_EVENT".into(),
                message: format!("not hex: {e}"),
                field: Some(field),
            },
        )
    })
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), Failure> {
    let token = &state.config.read_token;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let ok = match given {
        // Compare without an early exit on the first different byte.
        Some(g) if !token.is_empty() && g.len() == token.len() => {
            g.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "this read needs `Authorization: Bearer <read token>`",
            Some("authorization"),
        ))
    }
}

/// Submit one signed event.
#[utoipa::path(post, path = "/v1/events", request_body = SubmitRequest,
    responses((status = 202, description = "Admitted: durable, waiting for a block", body = SubmitResult),
              (status = 200, description = "Already known: its original outcome", body = SubmitResult),
              (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError),
              (status = 409, description = "A business id is used by another event", body = ApiError),
              (status = 413, body = ApiError), (status = 415, description = "Not Content-Type: application/json", body = ApiError),
              (status = 503, body = ApiError)))]
async fn submit(
    State(s): State<AppState>,
    body: Result<Json<SubmitRequest>, JsonRejection>,
) -> Result<Response, Failure> {
    let Json(req) = body.map_err(json_rejection)?;
    let bytes = decode_hex(None, &req.event, s.engine.config().event_bytes_max)?;
    let mut answers = s
        .engine
        .admit(vec![bytes])
        .await
        .map_err(|e| Failure(admit_status(&e), admit_error(&e)))?;
    match answers.pop() {
        Some(Ok(o)) => {
            let status = if o.duplicate {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            Ok((status, Json(submit_result(&o))).into_response())
        }
        Some(Err(e)) => {
            s.engine.metrics().events_refused.fetch_add(1, Ordering::Relaxed);
            Err(Failure(admit_status(&e), admit_error(&e)))
        }
        None => Err(internal("no answer")),
    }
}

/// Submit several signed events; each gets its own answer.
#[utoipa::path(post, path = "/v1/events/batch", request_body = SubmitBatchRequest,
    responses((status = 200, body = BatchResponse), (status = 400, body = ApiError), (status = 413, body = ApiError),
              (status = 415, description = "Not Content-Type: application/json", body = ApiError),
              (status = 503, body = ApiError)))]
async fn submit_batch(
    State(s): State<AppState>,
    body: Result<Json<SubmitBatchRequest>, JsonRejection>,
) -> Result<Json<BatchResponse>, Failure> {
    let Json(req) = body.map_err(json_rejection)?;
    let limit = s.engine.config().event_bytes_max;
    let mut decoded: Vec<Result<Vec<u8>, ApiError>> = Vec::with_capacity(req.events.len());
    for (i, e) in req.events.iter().enumerate() {
        decoded.push(decode_hex(Some(i), e, limit).map_err(|f| f.1));
    }
    let good: Vec<Vec<u8>> = decoded.iter().filter_map(|d| d.as_ref().ok().cloned()).collect();
    let mut answers = s
        .engine
        .admit(good)
        .await
        .map_err(|e| Failure(admit_status(&e), admit_error(&e)))?
        .into_iter();
    let mut results = Vec::with_capacity(decoded.len());
    for d in decoded {
        results.push(match d {
            Err(e) => BatchItemResult {
                ok: None,
                error: Some(e),
            },
            Ok(_) => match answers.next() {
                Some(Ok(o)) => BatchItemResult {
                    ok: Some(submit_result(&o)),
                    error: None,
                },
                Some(Err(e)) => BatchItemResult {
                    ok: None,
                    error: Some(admit_error(&e)),
                },
                None => return Err(internal("missing answer")),
            },
        });
    }
    let accepted = results.iter().filter(|r| r.ok.is_some()).count();
    let refused = results.len() - accepted;
    s.engine
        .metrics()
        .events_refused
        .fetch_add(refused as u64, Ordering::Relaxed);
    Ok(Json(BatchResponse {
        results,
        accepted,
        refused,
    }))
}

fn parse_event_id(s: &str) -> Result<EventId, Failure> {
    Hash32::from_hex(s).map(EventId).map_err(|_| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED_ID",
            "an event id is 64 hex digits",
            Some("id"),
        )
    })
}

fn path_rejection(r: PathRejection) -> Failure {
    Failure::new(StatusCode::BAD_REQUEST, "MALFORMED_PATH", r.body_text(), None)
}

fn query_rejection(r: QueryRejection) -> Failure {
    Failure::new(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", r.body_text(), None)
}

/// What recording an event of this node's chain derived. Public: the event id is
/// unguessable, so only those who saw the event (its author, this node) can ask.
#[utoipa::path(get, path = "/v1/events/{id}/outcome", params(("id" = String, Path, pattern = r"^[0-9a-fA-F]{64}$", description = "Event id, 64 hex digits")),
    responses((status = 200, body = EventOutcomeDto),
        (status = 400, body = ApiError, description = "MALFORMED_EVENT: not an event id"),
        (status = 404, body = ApiError, description = "NOT_RECORDED: not in a block of this node's chain (pending, rejected or unknown: see GET /v1/events/{id})")))]
async fn event_outcome(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<EventOutcomeDto>, Failure> {
    let Path(id) = id.map_err(path_rejection)?;
    let id = parse_event_id(&id)?;
    match s.engine.event_outcome(&id).map_err(store)? {
        Some(o) => Ok(Json(EventOutcomeDto {
            event_id: id.to_string(),
            height: o.height,
            index: o.index,
            certified: o.certified,
            derived: o.derived.iter().map(outcome_json).collect(),
        })),
        None => Err(Failure::new(
            StatusCode::NOT_FOUND,
            "NOT_RECORDED",
            "no block of this node's chain holds that event (pending, rejected or unknown: see GET /v1/events/{id})",
            Some("id"),
        )),
    }
}

/// An event's status: pending, committed, certified, rejected or unknown. Public: an
/// event id is unguessable and the answer holds no business data.
#[utoipa::path(get, path = "/v1/events/{id}", params(("id" = String, Path, pattern = r"^[0-9a-fA-F]{64}$", description = "Event id, 64 hex digits")),
    responses((status = 200, body = EventStatusDto), (status = 400, description = "Not 64 hex digits", body = ApiError),
        (status = 404, body = ApiError)))]
async fn event_status(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<EventStatusDto>, Failure> {
    let Path(id) = id.map_err(path_rejection)?;
    let id = parse_event_id(&id)?;
    let st = s.engine.event_status(&id).map_err(store)?;
    let mut dto = EventStatusDto {
        event_id: id.to_string(),
        status: String::new(),
        height: None,
        index: None,
        code: None,
        message: None,
        field: None,
    };
    match st {
        EventStatus::Pending => dto.status = "pending".into(),
        EventStatus::Committed {
            height,
            index,
            certified,
        } => {
            dto.status = if certified { "certified" } else { "committed" }.into();
            dto.height = Some(height);
            dto.index = Some(index);
        }
        EventStatus::Rejected { code, message, field } => {
            dto.status = "rejected".into();
            dto.code = Some(code);
            dto.message = Some(message);
            dto.field = field;
        }
        EventStatus::Unknown => {
            return Err(Failure::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "this node has never seen that event",
                Some("id"),
            ))
        }
    }
    Ok(Json(dto))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    /// Start after this id.
    after: Option<String>,
    /// Page size (default 100; above the node's page size, that size).
    #[param(minimum = 1, maximum = 1000000)]
    limit: Option<usize>,
}

/// The largest `limit` a page query takes; a value above the node's page size is
/// served as that size.
const LIMIT_MAX: usize = 1_000_000;

/// The largest `from` height a query takes: 2^53 - 1, the largest integer every JSON
/// client reads exactly.
const HEIGHT_QUERY_MAX: u64 = (1 << 53) - 1;

/// A page size from a query: `default` when absent, 1 to [`LIMIT_MAX`] when given (400
/// otherwise, as the OpenAPI document says), never above the node's page size.
fn page_limit(limit: Option<usize>, default: usize, page_max: usize) -> Result<usize, Failure> {
    match limit {
        None => Ok(default.min(page_max)),
        Some(n) if (1..=LIMIT_MAX).contains(&n) => Ok(n.min(page_max)),
        Some(_) => Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            format!("limit: 1 to {LIMIT_MAX}"),
            Some("limit"),
        )),
    }
}

/// Payments, by payment id.
#[utoipa::path(get, path = "/v1/payments", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<PaymentDto>), (status = 400, body = ApiError), (status = 401, body = ApiError)))]
async fn payments(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Vec<PaymentDto>>, Failure> {
    authorize(&s, &headers)?;
    let Query(q) = q.map_err(query_rejection)?;
    let limit = page_limit(q.limit, 100, s.config.page_max)?;
    let rows = s.engine.payments(q.after.as_deref(), limit).map_err(store)?;
    Ok(Json(rows.iter().map(PaymentDto::from).collect()))
}

/// One payment.
#[utoipa::path(get, path = "/v1/payments/{id}", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = PaymentDto), (status = 404, body = ApiError), (status = 401, body = ApiError)))]
async fn payment(
    State(s): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<PaymentDto>, Failure> {
    authorize(&s, &headers)?;
    let Path(id) = id.map_err(path_rejection)?;
    match s.engine.payment(&id).map_err(store)? {
        Some(p) => Ok(Json(PaymentDto::from(&p))),
        None => Err(Failure::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no payment {id}"),
            Some("id"),
        )),
    }
}

/// One invoice by number.
#[utoipa::path(get, path = "/v1/invoices/{number}", params(("number" = String, Path, pattern = r"^[0-9]{20}$", description = "Invoice number, 20 digits")), security(("bearer" = [])),
    responses((status = 200, body = InvoiceDto), (status = 400, body = ApiError), (status = 404, body = ApiError),
        (status = 401, body = ApiError)))]
async fn invoice(
    State(s): State<AppState>,
    headers: HeaderMap,
    number: Result<Path<String>, PathRejection>,
) -> Result<Response, Failure> {
    authorize(&s, &headers)?;
    let Path(number) = number.map_err(path_rejection)?;
    // The router cannot match a parameter with a suffix, so `{number}.xml` arrives here.
    if let Some(number) = number.strip_suffix(".xml") {
        return invoice_xml(&s, number);
    }
    let n = parse_number(&number)?;
    Ok(Json(invoice_dto(&s, &n)?).into_response())
}

fn parse_number(number: &str) -> Result<InvoiceNumber, Failure> {
    number.parse().map_err(|e: fapiao_core::ids::ParseError| {
        Failure::new(StatusCode::BAD_REQUEST, "MALFORMED_NUMBER", e.0, Some("number"))
    })
}

fn invoice_dto(s: &AppState, n: &InvoiceNumber) -> Result<InvoiceDto, Failure> {
    match s.engine.invoice(n).map_err(store)? {
        Some(i) => Ok(InvoiceDto::new(&i, s.engine.genesis(), wall_now())),
        None => Err(Failure::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no invoice {n}"),
            Some("number"),
        )),
    }
}

/// One invoice as the fully digitalised e-invoice (数电) XML: docs/API.md gives the
/// field mapping and `/v1/einvoice.xsd` the schema it follows.
#[utoipa::path(get, path = "/v1/invoices/{number}.xml", params(("number" = String, Path, pattern = r"^[0-9]{20}$", description = "Invoice number, 20 digits")), security(("bearer" = [])),
    responses((status = 200, content_type = "application/xml", body = String, description = "The invoice XML"),
        (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 401, body = ApiError)))]
fn invoice_xml(s: &AppState, number: &str) -> Result<Response, Failure> {
    let n = parse_number(number)?;
    let inv = invoice_dto(s, &n)?;
    let original = match &inv.original {
        Some(o) => Some(invoice_dto(s, &parse_number(o)?)?),
        None => None,
    };
    let xml = crate::xml::invoice_xml(&inv, original.as_ref())
        .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string(), None))?;
    Ok(([(header::CONTENT_TYPE, "application/xml; charset=utf-8")], xml).into_response())
}

/// The XML schema of `/v1/invoices/{number}.xml`.
#[utoipa::path(get, path = "/v1/einvoice.xsd",
    responses((status = 200, content_type = "application/xml", body = String, description = "The schema")))]
async fn einvoice_schema() -> Response {
    (
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        crate::xml::SCHEMA,
    )
        .into_response()
}

/// The merchant's invoicing quota for the month: granted, used, left, suspended, and
/// how many requests wait for it.
#[utoipa::path(get, path = "/v1/quota", security(("bearer" = [])),
    responses((status = 200, body = QuotaDto), (status = 401, body = ApiError)))]
async fn quota(State(s): State<AppState>, headers: HeaderMap) -> Result<Json<QuotaDto>, Failure> {
    authorize(&s, &headers)?;
    let (record, waiting) = s.engine.quota().map_err(store)?;
    Ok(Json(QuotaDto::new(record.as_ref(), waiting, wall_now())))
}

/// The node's clock, against which a waiting form's deadline is shown (the ledger
/// decides by block time; a form past its deadline can no longer be answered).
fn wall_now() -> fapiao_core::Timestamp {
    fapiao_core::Timestamp(crate::verify::wall_ms())
}

/// One red-letter confirmation form of an invoice, in full.
#[utoipa::path(get, path = "/v1/invoices/{number}/forms/{form}",
    params(("number" = String, Path, pattern = r"^[0-9]{20}$", description = "Invoice number, 20 digits"), ("form" = u32, Path, minimum = 1)), security(("bearer" = [])),
    responses((status = 200, body = RedFormDto), (status = 400, body = ApiError), (status = 404, body = ApiError),
        (status = 401, body = ApiError)))]
async fn red_form(
    State(s): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, u32)>, PathRejection>,
) -> Result<Json<RedFormDto>, Failure> {
    authorize(&s, &headers)?;
    let Path((number, form)) = path.map_err(path_rejection)?;
    let n: InvoiceNumber = number.parse().map_err(|e: fapiao_core::ids::ParseError| {
        Failure::new(StatusCode::BAD_REQUEST, "MALFORMED_NUMBER", e.0, Some("number"))
    })?;
    match s.engine.red_form(&n, form).map_err(store)? {
        Some(f) => Ok(Json(RedFormDto::new(n, form, &f, wall_now()))),
        None => Err(Failure::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no form {form} on invoice {n}"),
            Some("form"),
        )),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// Page size (above the node's page size, that size).
    #[param(minimum = 1, maximum = 1000000)]
    limit: Option<usize>,
    /// Continue after this position (`HEIGHT.INDEX`, the `next` of the previous page).
    #[param(pattern = r"^[0-9]{1,20}\.[0-9]{1,10}$")]
    after: Option<String>,
}

/// Every state an invoice went through, in ledger order: each entry about it (its
/// request and issue, red-letter requests and red invoices, confirmation forms and their
/// answers, locks, refused claims, unlocks, closing, bookings), with block and time.
#[utoipa::path(get, path = "/v1/invoices/{number}/history",
    params(("number" = String, Path, pattern = r"^[0-9]{20}$", description = "Invoice number, 20 digits"), HistoryQuery), security(("bearer" = [])),
    responses((status = 200, body = InvoiceHistoryDto), (status = 400, body = ApiError), (status = 404, body = ApiError),
        (status = 401, body = ApiError)))]
async fn invoice_history(
    State(s): State<AppState>,
    headers: HeaderMap,
    number: Result<Path<String>, PathRejection>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<InvoiceHistoryDto>, Failure> {
    authorize(&s, &headers)?;
    let Path(number) = number.map_err(path_rejection)?;
    let Query(q) = q.map_err(query_rejection)?;
    let n: InvoiceNumber = number.parse().map_err(|e: fapiao_core::ids::ParseError| {
        Failure::new(StatusCode::BAD_REQUEST, "MALFORMED_NUMBER", e.0, Some("number"))
    })?;
    let after = match &q.after {
        None => None,
        Some(a) => Some(
            a.split_once('.')
                .and_then(|(h, i)| Some((h.parse::<u64>().ok()?, i.parse::<u32>().ok()?)))
                .ok_or_else(|| {
                    Failure::new(
                        StatusCode::BAD_REQUEST,
                        "INVALID_FIELD",
                        "after: HEIGHT.INDEX, the next of an earlier page",
                        Some("after"),
                    )
                })?,
        ),
    };
    let limit = page_limit(q.limit, s.config.page_max, s.config.page_max)?;
    if s.engine.invoice(&n).map_err(store)?.is_none() {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no invoice {n}"),
            Some("number"),
        ));
    }
    let rows = s.engine.invoice_history(&n, after, limit).map_err(store)?;
    Ok(Json(InvoiceHistoryDto::new(n, &rows, limit)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct InvoiceQuery {
    /// The invoices issued for this request and its retries.
    request_id: Option<String>,
    /// The invoices drawing on this payment.
    payment_id: Option<String>,
}

/// Invoices by request id or by payment id.
#[utoipa::path(get, path = "/v1/invoices", params(InvoiceQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<InvoiceDto>), (status = 400, body = ApiError), (status = 401, body = ApiError)))]
async fn invoices(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<InvoiceQuery>, QueryRejection>,
) -> Result<Json<Vec<InvoiceDto>>, Failure> {
    authorize(&s, &headers)?;
    let Query(q) = q.map_err(query_rejection)?;
    let numbers: Vec<InvoiceNumber> = match (q.request_id, q.payment_id) {
        (Some(r), None) => {
            s.engine
                .request_history(&r)
                .map_err(store)?
                .into_iter()
                .filter_map(|(_, rec)| match rec.outcome {
                    fapiao_domain::state::RequestOutcome::Issued(n)
                    | fapiao_domain::state::RequestOutcome::Reversed(n) => Some(n),
                    _ => None,
                })
                .collect()
        }
        (None, Some(p)) => s
            .engine
            .payment(&p)
            .map_err(store)?
            .map(|v| v.invoicing.invoices)
            .unwrap_or_default(),
        _ => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "MALFORMED_QUERY",
                "give exactly one of request_id and payment_id",
                None,
            ))
        }
    };
    let mut out = Vec::new();
    for n in numbers {
        if let Some(i) = s.engine.invoice(&n).map_err(store)? {
            out.push(InvoiceDto::new(&i, s.engine.genesis(), wall_now()));
        }
    }
    Ok(Json(out))
}

/// A request with its whole retry history.
#[utoipa::path(get, path = "/v1/requests/{id}", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = RequestHistoryDto), (status = 404, body = ApiError), (status = 401, body = ApiError)))]
async fn request(
    State(s): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<RequestHistoryDto>, Failure> {
    authorize(&s, &headers)?;
    let Path(id) = id.map_err(path_rejection)?;
    let history = s.engine.request_history(&id).map_err(store)?;
    if history.is_empty() {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no request {id}"),
            Some("id"),
        ));
    }
    Ok(Json(RequestHistoryDto {
        request_id: id,
        history: history.iter().map(|(i, r)| RequestDto::new(i, r)).collect(),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct FailureQuery {
    /// Only this reason code.
    reason: Option<String>,
    /// Leave out failures whose retries ended in an issued invoice (default true).
    open: Option<bool>,
    /// Page size (above the node's page size, that size).
    #[param(minimum = 1, maximum = 1000000)]
    limit: Option<usize>,
    /// Continue after this cursor (the `next` of the previous page).
    after: Option<String>,
}

/// Failed requests with reasons and remedies, and counts per reason.
#[utoipa::path(get, path = "/v1/failures", params(FailureQuery), security(("bearer" = [])),
    responses((status = 200, body = FailureListDto), (status = 400, body = ApiError), (status = 401, body = ApiError)))]
async fn failures(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<FailureQuery>, QueryRejection>,
) -> Result<Json<FailureListDto>, Failure> {
    authorize(&s, &headers)?;
    let Query(q) = q.map_err(query_rejection)?;
    let reason = match &q.reason {
        None => None,
        Some(code) => Some(fapiao_domain::catalogue::from_code(code).ok_or_else(|| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                "UNKNOWN_REASON",
                format!("no failure reason {code}"),
                Some("reason"),
            )
        })?),
    };
    let limit = page_limit(q.limit, s.config.page_max, s.config.page_max)?;
    let after = match &q.after {
        None => None,
        Some(a) => Some(fapiao_engine::FailureCursor::from_text(a).ok_or_else(|| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                "after: not a cursor from an earlier page",
                Some("after"),
            )
        })?),
    };
    let (rows, next) = s
        .engine
        .failures(reason, q.open.unwrap_or(true), limit, after.as_ref())
        .map_err(store)?;
    let failures: Vec<FailureDto> = rows.iter().map(FailureDto::from).collect();
    let mut counts = std::collections::BTreeMap::new();
    for f in &failures {
        *counts.entry(f.code.clone()).or_insert(0u64) += 1;
    }
    Ok(Json(FailureListDto {
        failures,
        counts,
        next: next.map(|c| c.to_text()),
    }))
}

/// Every failure reason with its remedy. Public.
#[utoipa::path(get, path = "/v1/failure-catalogue", responses((status = 200, body = Vec<CatalogueEntryDto>)))]
async fn catalogue() -> Json<Vec<CatalogueEntryDto>> {
    Json(
        fapiao_domain::catalogue::ALL
            .iter()
            .map(|r| {
                let i = fapiao_domain::catalogue::info(*r);
                CatalogueEntryDto {
                    code: i.code.into(),
                    retryable: i.retryable,
                    cause: i.cause.into(),
                    remedy: i.remedy.into(),
                }
            })
            .collect(),
    )
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct BlocksQuery {
    /// First height (default 1).
    #[param(minimum = 1, maximum = 9007199254740991_u64)]
    from: Option<u64>,
    /// Page size (default 100; above the node's page size, that size).
    #[param(minimum = 1, maximum = 1000000)]
    limit: Option<usize>,
}

/// Block headers of this node's chain.
#[utoipa::path(get, path = "/v1/blocks", params(BlocksQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<HeaderDto>), (status = 400, body = ApiError), (status = 401, body = ApiError)))]
async fn blocks(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<BlocksQuery>, QueryRejection>,
) -> Result<Json<Vec<HeaderDto>>, Failure> {
    authorize(&s, &headers)?;
    let Query(q) = q.map_err(query_rejection)?;
    let from = match q.from {
        None => 1,
        Some(h) if (1..=HEIGHT_QUERY_MAX).contains(&h) => h,
        Some(_) => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                format!("from: a height, 1 to {HEIGHT_QUERY_MAX}"),
                Some("from"),
            ))
        }
    };
    let rows = s
        .engine
        .blocks(from, page_limit(q.limit, 100, s.config.page_max)?)
        .map_err(store)?;
    Ok(Json(rows.iter().map(|(h, c)| HeaderDto::new(h, *c)).collect()))
}

/// One block with its entries.
#[utoipa::path(get, path = "/v1/blocks/{height}", params(("height" = u64, Path, minimum = 1)), security(("bearer" = [])),
    responses((status = 200, body = BlockDto), (status = 400, body = ApiError), (status = 404, body = ApiError),
        (status = 401, body = ApiError)))]
async fn block(
    State(s): State<AppState>,
    headers: HeaderMap,
    height: Result<Path<u64>, PathRejection>,
) -> Result<Json<BlockDto>, Failure> {
    authorize(&s, &headers)?;
    let Path(height) = height.map_err(path_rejection)?;
    block_response(s.engine.block(height).map_err(store)?, height)
}

/// One block of any chain this node replicates, with its certification: the witnesses
/// whose attestations form its certificate.
#[utoipa::path(get, path = "/v1/chains/{chain}/blocks/{height}", params(("chain" = u32, Path, minimum = 0, maximum = 999999, description = "Member code, at most six digits"), ("height" = u64, Path, minimum = 1)),
    security(("bearer" = [])),
    responses((status = 200, body = BlockDto), (status = 400, body = ApiError), (status = 404, body = ApiError),
        (status = 401, body = ApiError)))]
async fn chain_block(
    State(s): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(u32, u64)>, PathRejection>,
) -> Result<Json<BlockDto>, Failure> {
    authorize(&s, &headers)?;
    let Path((chain, height)) = path.map_err(path_rejection)?;
    let Some(chain) = fapiao_core::MemberCode::new(chain).filter(|c| s.engine.genesis().merchant(*c).is_some()) else {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no merchant chain {chain} in genesis"),
            Some("chain"),
        ));
    };
    block_response(s.engine.chain_block(chain, height).map_err(store)?, height)
}

fn block_response(
    found: Option<(fapiao_core::Block, Option<fapiao_core::Certificate>)>,
    height: u64,
) -> Result<Json<BlockDto>, Failure> {
    match found {
        Some((b, cert)) => Ok(Json(BlockDto {
            header: HeaderDto::new(&b.header, cert.is_some()),
            entries: b.entries.iter().map(entry_json).collect(),
            certificate_witnesses: cert
                .map(|c| c.signatures.iter().map(|w| w.witness.to_string()).collect())
                .unwrap_or_default(),
        })),
        None => Err(Failure::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no block {height}"),
            Some("height"),
        )),
    }
}

/// Equivocation evidence held by this node: each names a frozen chain. Public: it holds
/// two block headers and no business data.
#[utoipa::path(get, path = "/v1/evidence", responses((status = 200, body = Vec<EvidenceDto>)))]
async fn evidence(State(s): State<AppState>) -> Result<Json<Vec<EvidenceDto>>, Failure> {
    let all = s.engine.store().evidence().map_err(store)?;
    Ok(Json(
        all.iter()
            .map(|e| EvidenceDto {
                chain: e.first.body.chain.to_string(),
                height: e.first.body.height,
                blocks: vec![e.first.hash().to_string(), e.second.hash().to_string()],
                canonical_hex: hex::encode(fapiao_core::codec::to_bytes(e)),
            })
            .collect(),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct ReconQuery {
    /// First business day, `YYYY-MM-DD` (UTC+8).
    from: String,
    /// Last business day, inclusive.
    to: String,
}

/// Reconciliation of this chain's payments against invoices, per business day (UTC+8)
/// and payment method, with the payments not invoiced yet, the invoices that need a
/// red-letter reversal because their payments were refunded, and balance checks.
#[utoipa::path(get, path = "/v1/reconciliation", params(ReconQuery), security(("bearer" = [])),
    responses((status = 200, body = ReconciliationDto), (status = 400, body = ApiError), (status = 401, body = ApiError)))]
async fn reconciliation(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<ReconQuery>, QueryRejection>,
) -> Result<Json<ReconciliationDto>, Failure> {
    authorize(&s, &headers)?;
    let Query(q) = q.map_err(query_rejection)?;
    let day = |v: &str, field: &str| {
        fapiao_engine::parse_day(v).ok_or_else(|| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                "BAD_DATE",
                format!("{v:?} is not a date YYYY-MM-DD"),
                Some(field),
            )
        })
    };
    let (from, to) = (day(&q.from, "from")?, day(&q.to, "to")?);
    if to < from || to - from > RECON_DAYS_MAX {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "BAD_RANGE",
            format!("`to` must be on or after `from`, at most {RECON_DAYS_MAX} days later"),
            Some("to"),
        ));
    }
    let engine = s.engine.clone();
    let r = tokio::task::spawn_blocking(move || engine.reconcile(from, to))
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(store)?;
    Ok(Json(ReconciliationDto::new(&r, from, to)))
}

/// Longest reconciliation range, days.
const RECON_DAYS_MAX: u64 = 366;

/// The proof bundle of an invoice, for offline verification. Public (no token): the
/// caller must know the invoice number and its check code, or its issue date and total
/// including tax; wrong factors, an unknown number and malformed input get the same
/// answer. Rate-limited per client address, and each invoice verifies at most
/// `verify_checks_per_day` times a day (UTC+8) on this node.
#[utoipa::path(get, path = "/v1/verify/{number}", params(("number" = String, Path, description = "Invoice number, 20 digits; anything else gets the same 404 as wrong factors"), VerifyQuery),
    responses((status = 200, body = ProofDto),
              (status = 404, body = ApiError, description = "NOT_FOUND: wrong factors, unknown or malformed"),
              (status = 429, body = ApiError, description = "RATE_LIMITED (Retry-After: 1), or CHECKS_EXHAUSTED: this invoice was verified its daily number of times (Retry-After: seconds to midnight UTC+8)"),
              (status = 503, body = ApiError)))]
async fn verify_invoice(
    State(s): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    number: Result<Path<String>, PathRejection>,
    q: Result<Query<VerifyQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    if !s.limiter.allow(peer.ip()) {
        let f = Failure::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!("at most {VERIFY_PER_SECOND_MAX} verification requests per second per address"),
            None,
        );
        return Ok(([(header::RETRY_AFTER, "1")], f).into_response());
    }
    let not_found = || {
        Failure::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no invoice with this number and these factors",
            None,
        )
    };
    // Malformed input is answered like an unknown invoice too: nothing to learn from it.
    let (Ok(Path(number)), Ok(Query(q))) = (number, q) else {
        return Err(not_found());
    };
    let checked = check(&s, &number, &q).await.map_err(|e| match e {
        CheckFailed::Store(e) => store(e),
        CheckFailed::Task(m) => internal(m),
    })?;
    match checked {
        Checked::Found { bundle, left } => Ok(Json(ProofDto::new(&bundle, left)).into_response()),
        Checked::NotFound => Err(not_found()),
        Checked::Exhausted { limit, retry_secs } => {
            let f = Failure::new(
                StatusCode::TOO_MANY_REQUESTS,
                "CHECKS_EXHAUSTED",
                format!("this invoice was verified {limit} times today (UTC+8), the most a day; retry after midnight"),
                None,
            );
            Ok(([(header::RETRY_AFTER, retry_secs.to_string())], f).into_response())
        }
        Checked::NotCertified => {
            let f = Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "NOT_CERTIFIED",
                "the invoice's chain has no certified state covering it yet; retry shortly",
                None,
            );
            Ok(([(header::RETRY_AFTER, "1")], f).into_response())
        }
    }
}

/// Node status. Public: heights and counts, no business data.
#[utoipa::path(get, path = "/v1/status", responses((status = 200, body = StatusDto)))]
async fn status(State(s): State<AppState>) -> Result<Json<StatusDto>, Failure> {
    let st = s.engine.status().map_err(store)?;
    Ok(Json(StatusDto::from(&st)))
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.engine.metrics().render(),
    )
        .into_response()
}

async fn health(State(s): State<AppState>) -> Response {
    if s.engine.failed() {
        (StatusCode::SERVICE_UNAVAILABLE, "failed").into_response()
    } else {
        (StatusCode::OK, "ok").into_response()
    }
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn not_found() -> Failure {
    Failure::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "no such endpoint; see /openapi.json",
        None,
    )
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Fapiao node API", description = "Submit signed ledger events and read payments, invoices, failures and blocks. Errors are `{code, message, field}`."),
    paths(submit, submit_batch, event_status, event_outcome, payments, payment, invoice, invoice_xml, einvoice_schema, red_form, invoice_history, quota, invoices, request, failures, catalogue, blocks, block, chain_block, evidence, verify_invoice, reconciliation, status),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// The router for `engine`.
pub fn router(engine: Engine, config: ApiConfig) -> Router {
    let body_max = config.body_bytes_max;
    let state = AppState {
        engine,
        config: Arc::new(config),
        limiter: Arc::new(RateLimiter::default()),
        checks: Arc::new(std::sync::Mutex::new(DailyChecks::default())),
    };
    Router::new()
        .route("/v1/events", post(submit))
        .route("/v1/events/batch", post(submit_batch))
        .route("/v1/events/{id}", get(event_status))
        .route("/v1/events/{id}/outcome", get(event_outcome))
        .route("/v1/payments", get(payments))
        .route("/v1/payments/{id}", get(payment))
        .route("/v1/invoices", get(invoices))
        .route("/v1/invoices/{number}", get(invoice))
        .route("/v1/einvoice.xsd", get(einvoice_schema))
        .route("/v1/invoices/{number}/forms/{form}", get(red_form))
        .route("/v1/invoices/{number}/history", get(invoice_history))
        .route("/v1/quota", get(quota))
        .route("/v1/requests/{id}", get(request))
        .route("/v1/failures", get(failures))
        .route("/v1/failure-catalogue", get(catalogue))
        .route("/v1/blocks", get(blocks))
        .route("/v1/blocks/{height}", get(block))
        .route("/v1/chains/{chain}/blocks/{height}", get(chain_block))
        .route("/v1/evidence", get(evidence))
        .route("/v1/verify/{number}", get(verify_invoice))
        .route("/verify", get(crate::verify::page))
        .route("/v1/reconciliation", get(reconciliation))
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/openapi.json", get(openapi_json))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_max))
        .with_state(state)
}
