//! Invoice requests and their failures, with the failure catalogue.

use super::*;

/// A request with its whole retry history.
#[utoipa::path(get, path = "/v1/requests/{id}", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = RequestHistoryDto), (status = 404, body = ApiError), (status = 401, body = ApiError)))]
pub(super) async fn request(
    State(s): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<RequestHistoryDto>, Failure> {
    authorize(&s, &headers)?;
    let Path(id) = id.map_err(path_rejection)?;
    let history = s.engine.request_history(&id).map_err(store)?;
    if history.is_empty() {
        return Err(Failure::new(
            ErrorCode::NotFound,
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
pub(super) struct FailureQuery {
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
pub(super) async fn failures(
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
                ErrorCode::UnknownReason,
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
                ErrorCode::InvalidField,
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
pub(super) async fn catalogue() -> Json<Vec<CatalogueEntryDto>> {
    Json(
        fapiao_domain::catalogue::ALL
            .iter()
            .map(|r| CatalogueEntryDto::from(&fapiao_domain::catalogue::info(*r)))
            .collect(),
    )
}
