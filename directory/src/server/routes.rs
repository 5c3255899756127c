//! The HTTP API: the routes of `crate::api`, each a thin handler that
//! feeds the state machine or reads what it holds.

use super::*;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            api::DESCRIPTOR,
            post(post_descriptor).layer(DefaultBodyLimit::max(MAX_DESCRIPTOR_BYTES)),
        )
        .route(
            api::VOTE,
            post(post_vote).layer(DefaultBodyLimit::disable()),
        )
        .route(
            api::SIGNATURE,
            post(post_signature).layer(DefaultBodyLimit::max(MAX_SIGNATURE_BYTES)),
        )
        .route(api::ROUND_SIGNATURES, get(get_signatures))
        .route(api::ROUND_EQUIVOCATIONS, get(get_equivocations))
        .route(api::DOCUMENT_CURRENT, get(get_current))
        .route(api::DOCUMENT, get(get_document))
        .route(api::CLOCK, get(get_clock))
        .route(api::STATUS, get(get_status))
        .route(api::STATUS_PAGE, get(get_page))
        .route(api::METRICS, get(get_metrics))
        .with_state(shared)
}

fn refusal(rejection: &Rejection) -> Response {
    let status = match rejection.label() {
        "replay" | "equivocation" => StatusCode::CONFLICT,
        "wrong_epoch" | "out_of_window" | "unknown_round" => StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_authority" | "not_allowed" => StatusCode::FORBIDDEN,
        "full" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    (status, format!("{rejection}\n")).into_response()
}

fn body_refusal(rejection: BytesRejection) -> (&'static str, Response) {
    let status = rejection.status();
    let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "too_large"
    } else {
        "malformed"
    };
    (
        reason,
        (status, format!("{}\n", rejection.body_text())).into_response(),
    )
}

fn binary(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
}

/// Decodes an upload, feeds it to the authority and answers with the
/// outcome, counting it under `accepted` or `rejected` by reason.
fn accept_upload(
    shared: &Arc<Shared>,
    body: Result<Bytes, BytesRejection>,
    accepted: &Counter,
    rejected: &Family<ReasonLabel, Counter>,
    decode: impl FnOnce(&[u8]) -> Result<Input, Rejection>,
) -> Result<Response, Rejection> {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let (reason, response) = body_refusal(e);
            Metrics::reject(rejected, reason);
            return Ok(response);
        }
    };
    match decode(&body).and_then(|input| shared.feed(input)) {
        Ok(()) => {
            accepted.inc();
            Ok((StatusCode::OK, "accepted\n").into_response())
        }
        Err(rejection) => {
            Metrics::reject(rejected, rejection.label());
            Err(rejection)
        }
    }
}

async fn post_descriptor(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let metrics = &shared.metrics;
    if let Admission::Open(limits) = &shared.admission {
        let epoch = shared.authority().schedule().epoch_at(now_ms());
        let allowed = shared
            .sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .allow(epoch, source.ip(), limits.uploads_per_source);
        if !allowed {
            Metrics::reject(&metrics.descriptors_rejected, "source_limit");
            return (
                StatusCode::TOO_MANY_REQUESTS,
                "too many uploads from this address this epoch\n",
            )
                .into_response();
        }
    }
    // Decoded once: for the dial-back and for the state machine.
    let decoded = body.as_ref().ok().map(|b| SignedDescriptor::decode(b));
    if let (Some(reached), Some(Ok(descriptor))) = (&shared.reached, &decoded)
        && let Err(why) = reached.check(descriptor, &shared.admission).await
    {
        Metrics::reject(&metrics.descriptors_rejected, "unreachable");
        debug!("descriptor refused: its node cannot be dialled");
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("unreachable: {why}\n"),
        )
            .into_response();
    }
    accept_upload(
        &shared,
        body,
        &metrics.descriptors_accepted,
        &metrics.descriptors_rejected,
        |b| {
            decoded
                .unwrap_or_else(|| SignedDescriptor::decode(b))
                .map(Input::Descriptor)
                .map_err(Rejection::from)
        },
    )
    .unwrap_or_else(|rejection| {
        debug!(reason = rejection.label(), "descriptor refused");
        refusal(&rejection)
    })
}

/// Reads a vote upload: the first 32 bytes must name a pinned peer before
/// more is read, at most [`MAX_DOCUMENT_BYTES`] are read, and the signature
/// over the raw bytes must verify before anything is decoded.
async fn read_vote(
    shared: &Shared,
    body: axum::body::Body,
) -> Result<Vec<u8>, (&'static str, Response)> {
    use futures::StreamExt as _;
    let refuse = |status: StatusCode, reason: &'static str| {
        (reason, (status, format!("{reason}\n")).into_response())
    };
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    let mut voter_checked = false;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| refuse(StatusCode::BAD_REQUEST, "malformed"))?;
        if bytes.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, "too_large"));
        }
        bytes.extend_from_slice(&chunk);
        if !voter_checked && let Some(voter) = SignedVote::claimed_voter(&bytes) {
            if !shared.peer_keys.contains(&voter) {
                return Err(refuse(StatusCode::FORBIDDEN, "unknown_authority"));
            }
            voter_checked = true;
        }
    }
    Ok(bytes)
}

async fn post_vote(State(shared): State<Arc<Shared>>, body: axum::body::Body) -> Response {
    let metrics = &shared.metrics;
    let body = match read_vote(&shared, body).await {
        Ok(body) => body,
        Err((reason, response)) => {
            Metrics::reject(&metrics.votes_rejected, reason);
            return response;
        }
    };
    let result = SignedVote::authenticate(&body)
        .and_then(|_| SignedVote::from_bytes(&body))
        .map_err(Rejection::from)
        .map(Input::Vote);
    // Checking a vote verifies every descriptor in it: do it off the async
    // workers.
    let feeding = Arc::clone(&shared);
    let result =
        tokio::task::spawn_blocking(move || result.and_then(|input| feeding.feed(input))).await;
    match result {
        Ok(Ok(())) => {
            metrics.votes_accepted.inc();
            (StatusCode::OK, "accepted\n").into_response()
        }
        Ok(Err(rejection)) => {
            Metrics::reject(&metrics.votes_rejected, rejection.label());
            warn!(reason = %rejection, "peer vote refused");
            refusal(&rejection)
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn post_signature(
    State(shared): State<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let metrics = &shared.metrics;
    accept_upload(
        &shared,
        body,
        &metrics.signatures_accepted,
        &metrics.signatures_rejected,
        |b| {
            DocumentSignature::from_bytes(b)
                .map(Input::Signature)
                .map_err(Rejection::from)
        },
    )
    .unwrap_or_else(|rejection| refusal(&rejection))
}

async fn get_signatures(State(shared): State<Arc<Shared>>, Path(epoch): Path<u64>) -> Response {
    binary(codec::encode(&shared.authority().signatures(epoch)))
}

async fn get_equivocations(State(shared): State<Arc<Shared>>, Path(epoch): Path<u64>) -> Response {
    binary(codec::encode(&shared.authority().equivocations(epoch)))
}

async fn get_current(State(shared): State<Arc<Shared>>) -> Response {
    match shared.authority().current_document(now_ms()) {
        Some(doc) => binary(doc.to_bytes()),
        None => (StatusCode::NOT_FOUND, "no valid document\n").into_response(),
    }
}

async fn get_document(State(shared): State<Arc<Shared>>, Path(epoch): Path<u64>) -> Response {
    match shared.authority().document(epoch) {
        Some(doc) => binary(doc.to_bytes()),
        None => (
            StatusCode::NOT_FOUND,
            format!("no document for epoch {epoch}\n"),
        )
            .into_response(),
    }
}

async fn get_clock(State(shared): State<Arc<Shared>>) -> Response {
    binary(shared.clock.clone())
}

/// The body of `GET /status`.
#[derive(Debug, Serialize)]
struct Status {
    name: String,
    public_key: String,
    epoch: u64,
    genesis_ms: u64,
    epoch_length_ms: u64,
    threshold: usize,
    current_document_epoch: Option<u64>,
    last_round: Option<RoundStatus>,
    rounds: Vec<RoundStatus>,
}

async fn get_status(State(shared): State<Arc<Shared>>) -> Response {
    let now = now_ms();
    let authority = shared.authority();
    let status = Status {
        name: shared.name.clone(),
        public_key: hex::encode(authority.public_key()),
        epoch: authority.schedule().epoch_at(now),
        genesis_ms: authority.schedule().genesis_ms,
        epoch_length_ms: authority.schedule().epoch_length_ms,
        threshold: authority.threshold(),
        current_document_epoch: authority.current_document(now).map(|d| d.body.epoch),
        last_round: authority.last_finished_round(),
        rounds: authority.rounds(),
    };
    axum::Json(status).into_response()
}

/// The network status page (HTML, no script, nothing loaded from elsewhere).
async fn get_page(State(shared): State<Arc<Shared>>) -> Response {
    let now = now_ms();
    let (document, own_key, threshold, epoch) = {
        let authority = shared.authority();
        (
            authority.current_document(now).cloned(),
            authority.public_key(),
            authority.threshold(),
            authority.schedule().epoch_at(now),
        )
    };
    let mut authorities = vec![super::page::Signer {
        name: shared.name.clone(),
        key: own_key,
    }];
    authorities.extend(
        shared
            .peers
            .iter()
            .zip(&shared.peer_keys)
            .map(|(peer, key)| super::page::Signer {
                name: peer.name.clone(),
                key: *key,
            }),
    );
    let context = super::page::PageContext {
        name: &shared.name,
        authorities: &authorities,
        threshold,
        epoch,
    };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
        ],
        super::page::render(&context, document.as_ref()),
    )
        .into_response()
}

async fn get_metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
        .into_response()
}
