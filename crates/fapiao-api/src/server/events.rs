//! Writes and their outcomes: `POST /v1/events`, `POST /v1/events/batch`, and an
//! event's status and outcome by id.

use super::*;

pub(super) fn submit_result(o: &AdmitOutcome) -> SubmitResult {
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

pub(super) fn decode_hex(i: Option<usize>, s: &str, limit: usize) -> Result<Vec<u8>, Failure> {
    let field = match i {
        Some(i) => format!("events[{i}]"),
        None => "event".into(),
    };
    if s.len() > limit * 2 {
        return Err(Failure::of(
            ErrorCode::EventTooLarge,
            format!("event is over {limit} bytes"),
            Some(field),
        ));
    }
    hex::decode(s.trim()).map_err(|e| Failure::of(ErrorCode::MalformedEvent, format!("not hex: {e}"), Some(field)))
}

/// Submit one signed event.
#[utoipa::path(post, path = "/v1/events", request_body = SubmitRequest,
    responses((status = 202, description = "Admitted: durable, waiting for a block", body = SubmitResult),
              (status = 200, description = "Already known: its original outcome", body = SubmitResult),
              (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError),
              (status = 409, description = "A business id is used by another event", body = ApiError),
              (status = 413, body = ApiError), (status = 415, description = "Not Content-Type: application/json", body = ApiError),
              (status = 503, body = ApiError)))]
pub(super) async fn submit(
    State(s): State<AppState>,
    body: Result<Json<SubmitRequest>, JsonRejection>,
) -> Result<Response, Failure> {
    let Json(req) = body.map_err(json_rejection)?;
    let bytes = decode_hex(None, &req.event, s.engine.config().event_bytes_max)?;
    let mut answers = s.engine.admit(vec![bytes]).await.map_err(|e| Failure::admit(&e))?;
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
            Err(Failure::admit(&e))
        }
        None => Err(internal("no answer")),
    }
}

/// Submit several signed events; each gets its own answer.
#[utoipa::path(post, path = "/v1/events/batch", request_body = SubmitBatchRequest,
    responses((status = 200, body = BatchResponse), (status = 400, body = ApiError), (status = 413, body = ApiError),
              (status = 415, description = "Not Content-Type: application/json", body = ApiError),
              (status = 503, body = ApiError)))]
pub(super) async fn submit_batch(
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
    let mut answers = s.engine.admit(good).await.map_err(|e| Failure::admit(&e))?.into_iter();
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
                    error: Some(Failure::admit(&e).1),
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

pub(super) fn parse_event_id(s: &str) -> Result<EventId, Failure> {
    Hash32::from_hex(s)
        .map(EventId)
        .map_err(|_| Failure::new(ErrorCode::MalformedId, "an event id is 64 hex digits", Some("id")))
}

/// What recording an event of this node's chain derived. Public: the event id is
/// unguessable, so only those who saw the event (its author, this node) can ask.
#[utoipa::path(get, path = "/v1/events/{id}/outcome", params(("id" = String, Path, pattern = r"^[0-9a-fA-F]{64}$", description = "Event id, 64 hex digits")),
    responses((status = 200, body = EventOutcomeDto),
        (status = 400, body = ApiError, description = "MALFORMED_ID or MALFORMED_PATH: not an event id"),
        (status = 404, body = ApiError, description = "NOT_RECORDED: not in a block of this node's chain (pending, rejected or unknown: see GET /v1/events/{id})")))]
pub(super) async fn event_outcome(
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
            derived: o.derived.iter().map(DerivedEntryDto::outcome).collect(),
        })),
        None => Err(Failure::new(
            ErrorCode::NotRecorded,
            "no block of this node's chain holds that event (pending, rejected or unknown: see GET /v1/events/{id})",
            Some("id"),
        )),
    }
}

/// An event's status: pending, committed, certified or rejected (404 `NOT_FOUND` when
/// this node has never seen it). Public: an
/// event id is unguessable and the answer holds no business data.
#[utoipa::path(get, path = "/v1/events/{id}", params(("id" = String, Path, pattern = r"^[0-9a-fA-F]{64}$", description = "Event id, 64 hex digits")),
    responses((status = 200, body = EventStatusDto), (status = 400, description = "Not 64 hex digits", body = ApiError),
        (status = 404, description = "NOT_FOUND: this node has never seen the event", body = ApiError)))]
pub(super) async fn event_status(
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
                ErrorCode::NotFound,
                "this node has never seen that event",
                Some("id"),
            ))
        }
    }
    Ok(Json(dto))
}
