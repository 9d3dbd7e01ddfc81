//! Remote sensors: `POST /api/v1/ingest/legs` (a zstd batch of closed legs, see
//! `sensor::wire`) and `POST /api/v1/ingest/heartbeat` (JSON: version, spool backlog, live
//! legs), each with `Authorization: Bearer <sensor token>`.
//!
//! Choices:
//! - A batch goes through the same database writer as the embedded sensor's legs and is
//!   acknowledged only after its transaction committed: a sensor deletes a batch from its
//!   spool on that answer, so an earlier answer could lose legs in a crash. Inserts are
//!   idempotent (sensor, Call-ID, start), so a batch re-sent after a lost answer is harmless.
//! - The server stamps every leg with the id of the sensor that holds the token: one sensor
//!   cannot write into another's legs, whatever its legs say.
//! - Ingest is never locked by the license (SPEC §3: recording continues while locked).
//! - "Active channels now" is the union of the embedded sensor's live legs and every remote
//!   sensor's live legs from its last heartbeat, deduplicated by the channel key; a heartbeat
//!   older than three of its intervals no longer counts (a sensor gone quiet has no live calls
//!   we can vouch for).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use calls::Leg;
use channels::{ActiveMode, Keyer};
use sensor::uplink::{BatchAck, Heartbeat, HeartbeatAck, LiveLeg};
use tokio::sync::{mpsc, oneshot};

use super::IngestMsg;
use crate::error::{AppError, chain};
use crate::state::{AppState, LiveSnapshot};

/// Largest compressed batch accepted.
pub const MAX_BATCH_BODY: usize = 64 << 20;
/// Largest heartbeat accepted (a few hundred thousand live legs).
pub const MAX_HEARTBEAT_BODY: usize = 16 << 20;
/// A heartbeat counts for this many of its intervals.
const HEARTBEAT_LIFETIMES: u32 = 3;

/// The sensor a request was authenticated as (put in the request by [`gate_sensor`]).
#[derive(Debug, Clone)]
pub struct SensorCtx {
    pub id: i64,
    pub name: String,
}

struct Beat {
    received: Instant,
    valid_for: Duration,
    live: Vec<LiveLeg>,
    live_at: Option<i64>,
}

/// Remote sensors' side of the server state.
#[derive(Default)]
pub struct Remote {
    /// The writer's queue; taken away when the server stops so the writer can finish.
    ingest: Mutex<Option<mpsc::Sender<IngestMsg>>>,
    beats: Mutex<HashMap<i64, Beat>>,
    /// The embedded sensor's live legs, for the union with the remote ones.
    embedded: Mutex<Vec<LiveLeg>>,
}

impl Remote {
    pub fn set_ingest(&self, tx: mpsc::Sender<IngestMsg>) {
        if let Ok(mut g) = self.ingest.lock() {
            *g = Some(tx);
        }
    }

    /// No more batches: the writer ends once the queue is drained.
    pub fn close_ingest(&self) {
        if let Ok(mut g) = self.ingest.lock() {
            g.take();
        }
    }

    fn sender(&self) -> Option<mpsc::Sender<IngestMsg>> {
        self.ingest.lock().ok().and_then(|g| g.clone())
    }

    /// The embedded sensor's live legs at the end of its last capture.
    pub fn set_embedded(&self, live: Vec<LiveLeg>) {
        if let Ok(mut g) = self.embedded.lock() {
            *g = live;
        }
    }

    /// The embedded snapshot merged with the live heartbeats: every live leg counted once per
    /// sensor, channels deduplicated across all of them.
    pub fn merge(&self, embedded: LiveSnapshot, mode: ActiveMode) -> LiveSnapshot {
        let now = Instant::now();
        let Ok(mut beats) = self.beats.lock() else {
            return embedded;
        };
        beats.retain(|_, b| now.duration_since(b.received) <= b.valid_for);
        if beats.is_empty() {
            return embedded;
        }
        let own = self.embedded.lock().map(|g| g.clone()).unwrap_or_default();
        let mut keyer = Keyer::new();
        let mut keys = HashSet::new();
        let mut calls = embedded.calls;
        let mut at = embedded.at;
        let mut count = |l: &LiveLeg, keys: &mut HashSet<_>| {
            if mode == ActiveMode::Answered && !l.answered {
                return;
            }
            keys.insert(keyer.key(&l.caller, &l.called));
        };
        for l in &own {
            count(l, &mut keys);
        }
        for b in beats.values() {
            calls += u32::try_from(b.live.len()).unwrap_or(u32::MAX);
            at = at.max(b.live_at);
            for l in &b.live {
                count(l, &mut keys);
            }
        }
        let channels = u32::try_from(keys.len()).unwrap_or(u32::MAX);
        LiveSnapshot {
            at,
            calls,
            channels,
        }
    }
}

pub fn live_leg(l: &Leg) -> LiveLeg {
    LiveLeg {
        caller: l.caller.clone(),
        called: l.called.clone(),
        answered: l.answer.is_some(),
    }
}

fn json_error(code: StatusCode, message: &str) -> Response {
    (code, Json(serde_json::json!({ "error": message }))).into_response()
}

/// The gate for sensor routes: a valid, unrevoked bearer token, else 401. No session, no
/// CSRF (a bearer header is never sent by a browser on its own) and no license lock.
pub async fn gate_sensor(app: AppState, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        // Worded like every other API route without credentials.
        return unauthorized("login required");
    };
    match app.store.sensor_by_token(&store::token_hash(token)).await {
        Ok(Some(s)) => {
            req.extensions_mut().insert(SensorCtx {
                id: s.id,
                name: s.name,
            });
            next.run(req).await
        }
        Ok(None) => unauthorized("unknown or revoked sensor token"),
        Err(e) => {
            tracing::error!("sensor token lookup: {}", chain(&e));
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot check the sensor token",
            )
        }
    }
}

fn unauthorized(message: &str) -> Response {
    let mut r = json_error(StatusCode::UNAUTHORIZED, message);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"sipmeter sensors\""),
    );
    r
}

/// Updates the sensor's row (last seen, legs received, report) without making the answer
/// wait: the row is written on the read handle and may queue behind the writer's batch
/// transaction, and an acknowledgement must not.
fn record_seen(app: &AppState, sensor: &SensorCtx, report: Option<store::SensorReport>, legs: u64) {
    let (app, sensor) = (app.clone(), sensor.clone());
    tokio::spawn(async move {
        if let Err(e) = app
            .store
            .sensor_seen(sensor.id, app.now(), report.as_ref(), legs)
            .await
        {
            tracing::error!("cannot record sensor {}: {}", sensor.name, chain(&e));
        }
    });
}

/// `POST /api/v1/ingest/legs`.
pub async fn legs(
    State(app): State<AppState>,
    Extension(sensor): Extension<SensorCtx>,
    body: Body,
) -> Result<Response, AppError> {
    let bytes = match axum::body::to_bytes(body, MAX_BATCH_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return Err(AppError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch too large",
            ));
        }
    };
    let decoded = tokio::task::spawn_blocking(move || sensor::wire::decode(&bytes)).await;
    let sensor::wire::Batch { mut legs, messages } = match decoded {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return Err(AppError::new(StatusCode::BAD_REQUEST, e.to_string())),
        Err(e) => {
            return Err(AppError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                e.to_string(),
            ));
        }
    };
    let Ok(id) = u32::try_from(sensor.id) else {
        return Err(AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "sensor id out of range",
        ));
    };
    for l in &mut legs {
        l.sensor_id = id;
    }
    let n = legs.len() as u64;
    let Some(tx) = app.remote.sender() else {
        return Err(AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is stopping",
        ));
    };
    let (ack, done) = oneshot::channel();
    if tx
        .send(IngestMsg::Remote {
            legs,
            messages,
            ack,
        })
        .await
        .is_err()
    {
        return Err(AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is stopping",
        ));
    }
    let report = match done.await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::error!("cannot store {n} legs from sensor {}: {e}", sensor.name);
            return Err(AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot store the legs now",
            ));
        }
        Err(_) => {
            return Err(AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is stopping",
            ));
        }
    };
    record_seen(&app, &sensor, None, report.inserted);
    Ok(Json(BatchAck {
        inserted: report.inserted,
        duplicates: report.duplicates,
    })
    .into_response())
}

/// `POST /api/v1/ingest/heartbeat`.
pub async fn heartbeat(
    State(app): State<AppState>,
    Extension(sensor): Extension<SensorCtx>,
    body: Body,
) -> Result<Response, AppError> {
    let bytes = match axum::body::to_bytes(body, MAX_HEARTBEAT_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return Err(AppError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "heartbeat too large",
            ));
        }
    };
    let hb: Heartbeat = match serde_json::from_slice(&bytes) {
        Ok(h) => h,
        Err(e) => {
            return Err(AppError::new(
                StatusCode::BAD_REQUEST,
                format!("heartbeat is not valid JSON: {e}"),
            ));
        }
    };
    if let Some(claimed) = hb.sensor_id
        && i64::from(claimed) != sensor.id
    {
        return Err(AppError::new(
            StatusCode::CONFLICT,
            format!(
                "this token belongs to sensor {} ({}), not to sensor {claimed}",
                sensor.id, sensor.name
            ),
        ));
    }
    let report = store::SensorReport {
        version: hb.version.chars().take(64).collect(),
        spool_bytes: hb.spool_bytes,
        spool_batches: hb.spool_batches,
        spool_full: hb.spool_full,
    };
    if hb.spool_full {
        tracing::warn!(
            "sensor {} reports its spool full ({} bytes in {} batches): it cannot keep new legs until the backlog is delivered",
            sensor.name,
            hb.spool_bytes,
            hb.spool_batches
        );
    }
    record_seen(&app, &sensor, Some(report), 0);
    let interval = Duration::from_secs(u64::from(hb.interval_s.clamp(1, 3600)));
    if let Ok(mut beats) = app.remote.beats.lock() {
        beats.insert(
            sensor.id,
            Beat {
                received: Instant::now(),
                valid_for: interval * HEARTBEAT_LIFETIMES,
                live: hb.live,
                live_at: hb.live_at,
            },
        );
    }
    Ok(Json(HeartbeatAck {
        sensor_id: u32::try_from(sensor.id).unwrap_or(0),
    })
    .into_response())
}
