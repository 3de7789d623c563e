//! Payments and the daily reconciliation.

use super::*;

/// Payments, by payment id.
#[utoipa::path(get, path = "/v1/payments", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<PaymentDto>), (status = 400, body = ApiError), (status = 401, body = ApiError)))]
pub(super) async fn payments(
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
pub(super) async fn payment(
    State(s): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<PaymentDto>, Failure> {
    authorize(&s, &headers)?;
    let Path(id) = id.map_err(path_rejection)?;
    match s.engine.payment(&id).map_err(store)? {
        Some(p) => Ok(Json(PaymentDto::from(&p))),
        None => Err(Failure::new(
            ErrorCode::NotFound,
            format!("no payment {id}"),
            Some("id"),
        )),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct ReconQuery {
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
pub(super) async fn reconciliation(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<ReconQuery>, QueryRejection>,
) -> Result<Json<ReconciliationDto>, Failure> {
    authorize(&s, &headers)?;
    let Query(q) = q.map_err(query_rejection)?;
    let day = |v: &str, field: &str| {
        fapiao_engine::parse_day(v).ok_or_else(|| {
            Failure::new(
                ErrorCode::BadDate,
                format!("{v:?} is not a date YYYY-MM-DD"),
                Some(field),
            )
        })
    };
    let (from, to) = (day(&q.from, "from")?, day(&q.to, "to")?);
    if to < from || to - from > RECON_DAYS_MAX {
        return Err(Failure::new(
            ErrorCode::BadRange,
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
pub(super) const RECON_DAYS_MAX: u64 = 366;
