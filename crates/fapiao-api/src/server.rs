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
use fapiao_domain::ErrorCode;
use fapiao_engine::{AdmitError, AdmitOutcome, AdmitStatus, Engine, EventStatus};
use serde::Deserialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use utoipa::OpenApi;

mod blocks;
mod events;
mod invoices;
mod payments;
mod requests;

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
    /// The OpenAPI document this node serves.
    pub(crate) document: Arc<serde_json::Value>,
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
        let second = fapiao_engine::wall_clock().0 / 1000;
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

/// An error answer: its code decides the HTTP status and any `Retry-After`.
pub(crate) struct Failure(ErrorCode, ApiError);

impl Failure {
    fn new(code: ErrorCode, message: impl Into<String>, field: Option<&str>) -> Self {
        Failure::of(code, message, field.map(Into::into))
    }

    fn of(code: ErrorCode, message: impl Into<String>, field: Option<String>) -> Self {
        Failure(
            code,
            ApiError {
                code: code.as_str().into(),
                message: message.into(),
                field,
            },
        )
    }

    /// Admission's refusal of an event.
    fn admit(e: &AdmitError) -> Self {
        Failure::of(e.code(), e.to_string(), e.field())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, Json(self.1)).into_response();
        if let Some(s) = self.0.retry_after_s() {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(s));
        }
        r
    }
}

fn internal(e: impl std::fmt::Display) -> Failure {
    tracing::error!(error = %e, "request failed inside the node");
    Failure::new(ErrorCode::Internal, e.to_string(), None)
}

/// A read that failed in storage: damage to what was asked for (the node refuses to
/// serve a record that fails its integrity check) is `STORE_DAMAGED`, naming the repair;
/// anything else is `INTERNAL`.
fn store(e: fapiao_store::StoreError) -> Failure {
    if e.is_damage() || matches!(e, fapiao_store::StoreError::Inconsistent { .. }) {
        tracing::error!(error = %e, "refused to serve a damaged record");
        return Failure::new(ErrorCode::StoreDamaged, e.to_string(), None);
    }
    internal(e)
}

fn json_rejection(r: JsonRejection) -> Failure {
    let status = r.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return Failure::new(ErrorCode::BodyTooLarge, r.body_text(), None);
    }
    if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return Failure::new(
            ErrorCode::UnsupportedMediaType,
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
    Failure::of(ErrorCode::MalformedJson, text, field)
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
            ErrorCode::Unauthorized,
            "this read needs `Authorization: Bearer <read token>`",
            Some("authorization"),
        ))
    }
}

fn path_rejection(r: PathRejection) -> Failure {
    Failure::new(ErrorCode::MalformedPath, r.body_text(), None)
}

fn query_rejection(r: QueryRejection) -> Failure {
    Failure::new(ErrorCode::MalformedQuery, r.body_text(), None)
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
            ErrorCode::InvalidField,
            format!("limit: 1 to {LIMIT_MAX}"),
            Some("limit"),
        )),
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
        [(header::CONTENT_TYPE, fapiao_engine::Metrics::CONTENT_TYPE)],
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

async fn openapi_json(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json((*s.document).clone())
}

/// The OpenAPI document with this node's own bounds written in: the event size and the
/// batch size are settings (`[engine]`), so the document served states the ones this
/// node enforces.
fn node_document(engine: &fapiao_engine::EngineConfig) -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let hex_max = serde_json::Value::from(engine.event_bytes_max * 2);
    let schemas = &mut doc["components"]["schemas"];
    schemas["SubmitRequest"]["properties"]["event"]["maxLength"] = hex_max.clone();
    let events = &mut schemas["SubmitBatchRequest"]["properties"]["events"];
    events["maxItems"] = engine.batch_events_max.into();
    events["items"]["maxLength"] = hex_max;
    doc
}

async fn not_found() -> Failure {
    Failure::new(ErrorCode::NotFound, "no such endpoint; see /openapi.json", None)
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
    paths(events::submit, events::submit_batch, events::event_status, events::event_outcome, payments::payments, payments::payment, invoices::invoice, invoices::invoice_xml, invoices::einvoice_schema, invoices::red_form, invoices::invoice_history, invoices::quota, invoices::invoices, requests::request, requests::failures, requests::catalogue, blocks::blocks, blocks::block, blocks::chain_block, blocks::evidence, blocks::consortium, blocks::configuration, invoices::verify_invoice, payments::reconciliation, status),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Counts every error answer (`fapiao_http_errors_total`), whichever handler or
/// extractor produced it.
async fn count_errors(State(s): State<AppState>, r: Response) -> Response {
    if r.status().is_client_error() || r.status().is_server_error() {
        s.engine.metrics().count_http_error();
    }
    r
}

/// The router for `engine`.
pub fn router(engine: Engine, config: ApiConfig) -> Router {
    let body_max = config.body_bytes_max;
    let document = Arc::new(node_document(engine.config()));
    let state = AppState {
        document,
        engine,
        config: Arc::new(config),
        limiter: Arc::new(RateLimiter::default()),
        checks: Arc::new(std::sync::Mutex::new(DailyChecks::default())),
    };
    Router::new()
        .route("/v1/events", post(events::submit))
        .route("/v1/events/batch", post(events::submit_batch))
        .route("/v1/events/{id}", get(events::event_status))
        .route("/v1/events/{id}/outcome", get(events::event_outcome))
        .route("/v1/payments", get(payments::payments))
        .route("/v1/payments/{id}", get(payments::payment))
        .route("/v1/invoices", get(invoices::invoices))
        .route("/v1/invoices/{number}", get(invoices::invoice))
        .route("/v1/einvoice.xsd", get(invoices::einvoice_schema))
        .route("/v1/invoices/{number}/forms/{form}", get(invoices::red_form))
        .route("/v1/invoices/{number}/history", get(invoices::invoice_history))
        .route("/v1/quota", get(invoices::quota))
        .route("/v1/requests/{id}", get(requests::request))
        .route("/v1/failures", get(requests::failures))
        .route("/v1/failure-catalogue", get(requests::catalogue))
        .route("/v1/blocks", get(blocks::blocks))
        .route("/v1/blocks/{height}", get(blocks::block))
        .route("/v1/chains/{chain}/blocks/{height}", get(blocks::chain_block))
        .route("/v1/evidence", get(blocks::evidence))
        .route("/v1/consortium", get(blocks::consortium))
        .route("/v1/consortium/configuration", get(blocks::configuration))
        .route("/v1/verify/{number}", get(invoices::verify_invoice))
        .route("/verify", get(crate::verify::page))
        .route("/v1/reconciliation", get(payments::reconciliation))
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/openapi.json", get(openapi_json))
        .fallback(not_found)
        .layer(axum::middleware::map_response_with_state(state.clone(), count_errors))
        .layer(DefaultBodyLimit::max(body_max))
        .with_state(state)
}
