//! JSON handlers: flow, status, queue listing, stop/start, provenance,
//! metrics and health.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::{Value, json};
use sluice_runtime::{EventKind, FlowFile, ProvenanceEvent};

use crate::error::ApiError;
use crate::flow::{self, FlowView};
use crate::metrics;
use crate::state::UiState;
use crate::status::{self, StatusView};

/// Listing size when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;
/// Largest listing a request may ask for.
const MAX_LIMIT: usize = 1_000;

/// `GET /api/flow`
pub async fn flow(State(s): State<UiState>) -> Json<FlowView> {
    let (spec, redactor) = s.spec_and_redactor();
    Json(flow::view(&spec, &redactor))
}

/// `GET /api/status`
pub async fn status(State(s): State<UiState>) -> Json<StatusView> {
    let snapshot = s.engine.status();
    let mut rates = s.rates.lock();
    Json(status::view(snapshot, &mut rates, &s.redactor()))
}

/// `GET /metrics`
pub async fn prometheus(State(s): State<UiState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&s.engine.status()),
    )
}

/// `GET /healthz`
pub async fn healthz(State(s): State<UiState>) -> Json<Value> {
    let shutting_down = s.engine.shutdown_token().is_cancelled();
    Json(json!({
        "status": if shutting_down { "stopping" } else { "ok" },
        "flow": s.engine.spec().name.clone(),
    }))
}

fn limit(q: &HashMap<String, String>) -> Result<usize, ApiError> {
    match q.get("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "query parameter `limit`: `{v}` is not a whole number from 1 to {MAX_LIMIT}"
                ))
            }),
    }
}

/// One queued FlowFile.
#[derive(Debug, Serialize)]
pub struct QueuedFlowFile {
    /// Id.
    pub id: u64,
    /// Content size in bytes.
    pub size: u64,
    /// When it entered the flow (ms epoch).
    pub entry_date: u64,
    /// When its oldest ancestor entered the flow (ms epoch).
    pub lineage_start: u64,
    /// Penalised until (ms epoch), 0 if not.
    pub penalized_until: u64,
    /// Attributes, redacted.
    pub attributes: BTreeMap<String, String>,
}

/// `GET /api/connections/{id}/queue?limit=N`
pub async fn queue(
    State(s): State<UiState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let limit = limit(&q)?;
    let conn = s
        .engine
        .connection(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no connection `{id}` in this flow")))?;
    let redactor = s.redactor();
    let listed: Vec<QueuedFlowFile> = conn
        .listing(limit)
        .iter()
        .map(|ff: &FlowFile| QueuedFlowFile {
            id: ff.id,
            size: ff.size(),
            entry_date: ff.entry_date,
            lineage_start: ff.lineage_start,
            penalized_until: ff.penalized_until,
            attributes: redactor.attributes(&ff.attributes),
        })
        .collect();
    Ok(Json(json!({
        "connection": id,
        "queued_count": conn.queued_count(),
        "queued_bytes": conn.queued_bytes(),
        "flowfiles": listed,
    })))
}

fn set_running(s: &UiState, id: &str, running: bool) -> Result<Json<Value>, ApiError> {
    if s.engine.set_running(id, running) {
        tracing::info!(processor = %id, running, "processor state changed through the API");
        Ok(Json(json!({
            "id": id,
            "state": if running { "running" } else { "stopped" },
        })))
    } else {
        Err(ApiError::NotFound(format!(
            "no processor `{id}` in this flow"
        )))
    }
}

/// `POST /api/processors/{id}/stop`
pub async fn stop(
    State(s): State<UiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_running(&s, &id, false)
}

/// `POST /api/processors/{id}/start`
pub async fn start(
    State(s): State<UiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_running(&s, &id, true)
}

/// A provenance event for display.
#[derive(Debug, Serialize)]
pub struct EventView {
    /// Order of recording.
    pub seq: u64,
    /// When (ms epoch).
    pub time: u64,
    /// What happened.
    pub kind: EventKind,
    /// The FlowFile.
    pub flowfile: u64,
    /// Its parents.
    pub parents: Vec<u64>,
    /// Processor or connection.
    pub component: String,
    /// Relationship, remote URI or drop reason.
    pub details: String,
    /// Attributes at that moment, redacted.
    pub attributes: BTreeMap<String, String>,
}

/// `GET /api/provenance?flowfile=ID` or `?attribute=K&value=V[&limit=N]`:
/// every kept event of the FlowFile(s) and their descendants, in order.
pub async fn provenance(
    State(s): State<UiState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let repo = s.engine.provenance();
    let mut events: Vec<ProvenanceEvent> = Vec::new();
    let query;
    if let Some(v) = q.get("flowfile") {
        let id: u64 = v.trim().parse().map_err(|_| {
            ApiError::BadRequest(format!(
                "query parameter `flowfile`: `{v}` is not a FlowFile id (a whole number)"
            ))
        })?;
        events = repo.lineage(id);
        query = json!({ "flowfile": id });
    } else if let Some(key) = q.get("attribute") {
        let value = q.get("value").ok_or_else(|| {
            ApiError::BadRequest("query parameter `value` is required with `attribute`".into())
        })?;
        let limit = limit(&q)?;
        let mut ids: Vec<u64> = Vec::new();
        for e in repo.search(Some(key), value, limit) {
            if !ids.contains(&e.flowfile) {
                ids.push(e.flowfile);
            }
        }
        for id in ids {
            for e in repo.lineage(id) {
                if !events.iter().any(|k| k.seq == e.seq) {
                    events.push(e);
                }
            }
        }
        events.sort_by_key(|e| e.seq);
        query = json!({ "attribute": key, "value": s.redactor().scrub(value) });
    } else {
        return Err(ApiError::BadRequest(
            "give `flowfile=ID`, or `attribute=NAME&value=VALUE`".into(),
        ));
    }
    let mut flowfiles: Vec<u64> = Vec::new();
    for e in &events {
        if !flowfiles.contains(&e.flowfile) {
            flowfiles.push(e.flowfile);
        }
    }
    let r = s.redactor();
    let shown: Vec<EventView> = events
        .into_iter()
        .map(|e| EventView {
            seq: e.seq,
            time: e.time,
            kind: e.kind,
            flowfile: e.flowfile,
            parents: e.parents,
            component: e.component,
            details: r.scrub(&e.details).into_owned(),
            attributes: r.attributes(&e.attributes),
        })
        .collect();
    Ok(Json(json!({
        "query": query,
        "flowfiles": flowfiles,
        "events": shown,
    })))
}
