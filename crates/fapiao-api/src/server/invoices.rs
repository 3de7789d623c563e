//! Invoices: by number (JSON and 数电 XML), by payment or request, their history and
//! red-letter forms, the monthly quota, and the public proof bundle.

use super::*;

/// One invoice by number.
#[utoipa::path(get, path = "/v1/invoices/{number}", params(("number" = String, Path, pattern = r"^[0-9]{20}$", description = "Invoice number, 20 digits")), security(("bearer" = [])),
    responses((status = 200, body = InvoiceDto), (status = 400, body = ApiError), (status = 404, body = ApiError),
        (status = 401, body = ApiError)))]
pub(super) async fn invoice(
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

pub(super) fn parse_number(number: &str) -> Result<InvoiceNumber, Failure> {
    number
        .parse()
        .map_err(|e: fapiao_core::ids::ParseError| Failure::new(ErrorCode::MalformedNumber, e.0, Some("number")))
}

pub(super) fn invoice_dto(s: &AppState, n: &InvoiceNumber) -> Result<InvoiceDto, Failure> {
    match s.engine.invoice(n).map_err(store)? {
        Some(i) => Ok(InvoiceDto::new(&i, &s.engine.epochs(), wall_now())),
        None => Err(Failure::new(
            ErrorCode::NotFound,
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
pub(super) fn invoice_xml(s: &AppState, number: &str) -> Result<Response, Failure> {
    let n = parse_number(number)?;
    let inv = invoice_dto(s, &n)?;
    let original = match &inv.original {
        Some(o) => Some(invoice_dto(s, &parse_number(o)?)?),
        None => None,
    };
    let xml = crate::xml::invoice_xml(&inv, original.as_ref())
        .map_err(|e| Failure::new(ErrorCode::Internal, e.to_string(), None))?;
    Ok(([(header::CONTENT_TYPE, "application/xml; charset=utf-8")], xml).into_response())
}

/// The XML schema of `/v1/invoices/{number}.xml`.
#[utoipa::path(get, path = "/v1/einvoice.xsd",
    responses((status = 200, content_type = "application/xml", body = String, description = "The schema")))]
pub(super) async fn einvoice_schema() -> Response {
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
pub(super) async fn quota(State(s): State<AppState>, headers: HeaderMap) -> Result<Json<QuotaDto>, Failure> {
    authorize(&s, &headers)?;
    let (record, waiting) = s.engine.quota().map_err(store)?;
    Ok(Json(QuotaDto::new(record.as_ref(), waiting, wall_now())))
}

/// The node's clock, against which a waiting form's deadline is shown (the ledger
/// decides by block time; a form past its deadline can no longer be answered).
pub(super) fn wall_now() -> fapiao_core::Timestamp {
    fapiao_core::Timestamp(crate::verify::wall_ms())
}

/// One red-letter confirmation form of an invoice, in full.
#[utoipa::path(get, path = "/v1/invoices/{number}/forms/{form}",
    params(("number" = String, Path, pattern = r"^[0-9]{20}$", description = "Invoice number, 20 digits"), ("form" = u32, Path, minimum = 1)), security(("bearer" = [])),
    responses((status = 200, body = RedFormDto), (status = 400, body = ApiError), (status = 404, body = ApiError),
        (status = 401, body = ApiError)))]
pub(super) async fn red_form(
    State(s): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, u32)>, PathRejection>,
) -> Result<Json<RedFormDto>, Failure> {
    authorize(&s, &headers)?;
    let Path((number, form)) = path.map_err(path_rejection)?;
    let n: InvoiceNumber = number
        .parse()
        .map_err(|e: fapiao_core::ids::ParseError| Failure::new(ErrorCode::MalformedNumber, e.0, Some("number")))?;
    match s.engine.red_form(&n, form).map_err(store)? {
        Some(f) => Ok(Json(RedFormDto::new(n, form, &f, wall_now()))),
        None => Err(Failure::new(
            ErrorCode::NotFound,
            format!("no form {form} on invoice {n}"),
            Some("form"),
        )),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct HistoryQuery {
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
pub(super) async fn invoice_history(
    State(s): State<AppState>,
    headers: HeaderMap,
    number: Result<Path<String>, PathRejection>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<InvoiceHistoryDto>, Failure> {
    authorize(&s, &headers)?;
    let Path(number) = number.map_err(path_rejection)?;
    let Query(q) = q.map_err(query_rejection)?;
    let n: InvoiceNumber = number
        .parse()
        .map_err(|e: fapiao_core::ids::ParseError| Failure::new(ErrorCode::MalformedNumber, e.0, Some("number")))?;
    let after = match &q.after {
        None => None,
        Some(a) => Some(
            a.split_once('.')
                .and_then(|(h, i)| Some((h.parse::<u64>().ok()?, i.parse::<u32>().ok()?)))
                .ok_or_else(|| {
                    Failure::new(
                        ErrorCode::InvalidField,
                        "after: HEIGHT.INDEX, the next of an earlier page",
                        Some("after"),
                    )
                })?,
        ),
    };
    let limit = page_limit(q.limit, s.config.page_max, s.config.page_max)?;
    if s.engine.invoice(&n).map_err(store)?.is_none() {
        return Err(Failure::new(
            ErrorCode::NotFound,
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
pub(super) struct InvoiceQuery {
    /// The invoices issued for this request and its retries.
    request_id: Option<String>,
    /// The invoices drawing on this payment.
    payment_id: Option<String>,
}

/// Invoices by request id or by payment id.
#[utoipa::path(get, path = "/v1/invoices", params(InvoiceQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<InvoiceDto>), (status = 400, body = ApiError), (status = 401, body = ApiError)))]
pub(super) async fn invoices(
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
                ErrorCode::MalformedQuery,
                "give exactly one of request_id and payment_id",
                None,
            ))
        }
    };
    let mut out = Vec::new();
    for n in numbers {
        if let Some(i) = s.engine.invoice(&n).map_err(store)? {
            out.push(InvoiceDto::new(&i, &s.engine.epochs(), wall_now()));
        }
    }
    Ok(Json(out))
}

/// The proof bundle of an invoice, for offline verification. Public (no token): the
/// caller must know the invoice number and its check code, or its issue date and total
/// including tax; wrong factors, an unknown number and malformed input get the same
/// answer. Rate-limited per client address, and each invoice verifies at most
/// `verify_checks_per_day` times a day (UTC+8) on this node.
#[utoipa::path(get, path = "/v1/verify/{number}", params(("number" = String, Path, description = "Invoice number, 20 digits; anything else gets the same 404 as wrong factors"), VerifyQuery),
    responses((status = 200, body = ProofDto),
              (status = 404, body = ApiError, description = "NOT_FOUND: wrong factors, unknown or malformed"),
              (status = 410, body = ApiError, description = "STATE_NOT_KEPT: `as_of` is older than the state this node keeps"),
              (status = 429, body = ApiError, description = "RATE_LIMITED (Retry-After: 1), or CHECKS_EXHAUSTED: this invoice was verified its daily number of times (Retry-After: seconds to midnight UTC+8)"),
              (status = 503, body = ApiError, description = "NOT_CERTIFIED (Retry-After: 1): the invoice's block, or the height asked for, awaits its certificate")))]
pub(super) async fn verify_invoice(
    State(s): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    number: Result<Path<String>, PathRejection>,
    q: Result<Query<VerifyQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    if !s.limiter.allow(peer.ip()) {
        let f = Failure::new(
            ErrorCode::RateLimited,
            format!("at most {VERIFY_PER_SECOND_MAX} verification requests per second per address"),
            None,
        );
        return Ok(f.into_response());
    }
    let not_found = || {
        Failure::new(
            ErrorCode::NotFound,
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
                ErrorCode::ChecksExhausted,
                format!("this invoice was verified {limit} times today (UTC+8), the most a day; retry after midnight"),
                None,
            );
            Ok(([(header::RETRY_AFTER, retry_secs.to_string())], f).into_response())
        }
        Checked::NotCertified => {
            let f = Failure::new(
                ErrorCode::NotCertified,
                "the invoice's block, or the height asked for, is not certified yet; retry shortly",
                None,
            );
            Ok(f.into_response())
        }
        Checked::NotKept { oldest, days } => Err(Failure::new(
            ErrorCode::StateNotKept,
            format!("this node keeps each chain's state as of its last 256 blocks and its last {days} days: the oldest height of this chain it proves a status as of is {oldest}"),
            Some("as_of"),
        )),
    }
}
