//! Blocks, certificates and equivocation evidence.

use super::*;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct BlocksQuery {
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
pub(super) async fn blocks(
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
                ErrorCode::InvalidField,
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
pub(super) async fn block(
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
pub(super) async fn chain_block(
    State(s): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(u32, u64)>, PathRejection>,
) -> Result<Json<BlockDto>, Failure> {
    authorize(&s, &headers)?;
    let Path((chain, height)) = path.map_err(path_rejection)?;
    let Some(chain) = fapiao_core::MemberCode::new(chain).filter(|c| s.engine.epochs().first_epoch(*c).is_some())
    else {
        return Err(Failure::new(
            ErrorCode::NotFound,
            format!("no merchant chain {chain} in genesis"),
            Some("chain"),
        ));
    };
    block_response(s.engine.chain_block(chain, height).map_err(store)?, height)
}

pub(super) fn block_response(
    found: Option<(fapiao_core::Block, Option<fapiao_core::Certificate>)>,
    height: u64,
) -> Result<Json<BlockDto>, Failure> {
    match found {
        Some((b, cert)) => Ok(Json(BlockDto {
            header: HeaderDto::new(&b.header, cert.is_some()),
            entries: b.entries.iter().map(EntryDto::new).collect(),
            certificate_witnesses: cert
                .map(|c| c.signatures.iter().map(|w| w.witness.to_string()).collect())
                .unwrap_or_default(),
        })),
        None => Err(Failure::new(
            ErrorCode::NotFound,
            format!("no block {height}"),
            Some("height"),
        )),
    }
}

/// Equivocation evidence held by this node: each names a frozen chain, or the chain
/// reset that superseded it (kept on record). Public: it holds two block headers and no
/// business data.
#[utoipa::path(get, path = "/v1/evidence", responses((status = 200, body = Vec<EvidenceDto>)))]
pub(super) async fn evidence(State(s): State<AppState>) -> Result<Json<Vec<EvidenceDto>>, Failure> {
    let all = s.engine.evidence().map_err(store)?;
    Ok(Json(
        all.iter()
            .map(|(superseded, e)| EvidenceDto {
                superseded_in_epoch: *superseded,
                chain: e.first.body.chain.to_string(),
                height: e.first.body.height,
                blocks: vec![e.first.hash().to_string(), e.second.hash().to_string()],
                canonical_hex: hex::encode(fapiao_core::codec::to_bytes(e)),
            })
            .collect(),
    ))
}

/// The consortium's configuration as this node knows it: the newest epoch's members,
/// roles, keys and quorum, and every certified configuration change that led there.
#[utoipa::path(get, path = "/v1/consortium", security(("bearer" = [])),
    responses((status = 200, body = ConsortiumDto), (status = 401, body = ApiError)))]
pub(super) async fn consortium(State(s): State<AppState>, headers: HeaderMap) -> Result<Json<ConsortiumDto>, Failure> {
    authorize(&s, &headers)?;
    let history = s.engine.epoch_history().map_err(store)?;
    let recorded = s.engine.recorded_epoch().map_err(store)?;
    let epochs = s.engine.epochs();
    Ok(Json(ConsortiumDto::new(
        s.engine.network(),
        epochs.latest(),
        recorded,
        &history,
    )))
}

/// The admin chain's certified blocks from height 1, canonical: from them and the
/// genesis file alone anyone learns every epoch's members and keys.
#[utoipa::path(get, path = "/v1/consortium/configuration", security(("bearer" = [])),
    responses((status = 200, body = ConfigurationDto), (status = 401, body = ApiError)))]
pub(super) async fn configuration(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ConfigurationDto>, Failure> {
    authorize(&s, &headers)?;
    let blocks = s.engine.configuration_blocks().map_err(store)?;
    Ok(Json(ConfigurationDto {
        blocks: blocks.len(),
        configuration_hex: hex::encode(fapiao_core::codec::to_bytes(&blocks)),
    }))
}
