//! Settings › Sensors: admins create remote sensors (the token is shown once, only its hash
//! is kept) and revoke them; the list shows what each sensor last reported.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use super::{Chrome, When, render};
use crate::error::{AppError, Context, chain};
use crate::http::Ctx;
use crate::state::AppState;

struct SensorRow {
    id: i64,
    name: String,
    created: String,
    state: &'static str,
    last_seen: String,
    version: String,
    legs_received: u64,
    backlog: String,
    revoked: bool,
}

#[derive(Template)]
#[template(path = "sensors.html")]
struct SensorsPage {
    chrome: Chrome,
    sensors: Vec<SensorRow>,
    message: Option<String>,
    message_class: &'static str,
    /// A token just created: shown this once.
    new_token: Option<String>,
}

/// A sensor name: 1 to 64 letters, digits and `._-` (it is typed on a command line).
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A new sensor token: 256 random bits, hex.
pub fn new_token() -> String {
    crate::auth::random_token()
}

async fn page(
    app: &AppState,
    ctx: &Ctx,
    code: StatusCode,
    message: Option<(String, bool)>,
    new_token: Option<String>,
) -> Result<Response, AppError> {
    let sensors = app
        .store
        .list_sensors()
        .await
        .log_as("sensors", "cannot read the sensors")?;
    let tz = &app.license.tz;
    let rows = sensors
        .into_iter()
        .map(|s| SensorRow {
            id: s.id,
            created: When::new(s.created, tz).to_string(),
            state: if s.revoked.is_some() {
                "revoked"
            } else if s.spool_full {
                "spool full"
            } else if s.last_seen.is_none() {
                "never seen"
            } else {
                "active"
            },
            last_seen: s
                .last_seen
                .map(|t| When::new(t, tz).to_string())
                .unwrap_or_else(|| "never".into()),
            version: s.version.unwrap_or_default(),
            legs_received: s.legs_received,
            backlog: format!("{} batches, {} bytes", s.spool_batches, s.spool_bytes),
            revoked: s.revoked.is_some(),
            name: s.name,
        })
        .collect();
    let p = SensorsPage {
        chrome: Chrome::new(app, &ctx.status, ctx.user.as_ref(), "settings-sensors"),
        sensors: rows,
        message_class: if message.as_ref().is_some_and(|m| m.1) {
            "ok-text"
        } else {
            "error-text"
        },
        message: message.map(|m| m.0),
        new_token,
    };
    Ok((code, render(&p)).into_response())
}

pub async fn list(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    page(&app, &ctx, StatusCode::OK, None, None).await
}

#[derive(Deserialize)]
pub struct NewSensor {
    name: String,
}

pub async fn create(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<NewSensor>,
) -> Result<Response, AppError> {
    let name = f.name.trim();
    if !valid_name(name) {
        let m = "A sensor name has 1 to 64 letters, digits or . _ -".to_string();
        return page(&app, &ctx, StatusCode::BAD_REQUEST, Some((m, false)), None).await;
    }
    let token = new_token();
    match app
        .store
        .create_sensor(name, &store::token_hash(&token), app.now())
        .await
    {
        Ok(Some(id)) => {
            let m = format!(
                "Sensor {name} created (id {id}). Copy its token now: it is not shown again."
            );
            page(&app, &ctx, StatusCode::OK, Some((m, true)), Some(token)).await
        }
        Ok(None) => {
            let m = format!("A sensor called {name} exists already.");
            page(&app, &ctx, StatusCode::CONFLICT, Some((m, false)), None).await
        }
        Err(e) => {
            tracing::error!("sensors: {}", chain(&e));
            let m = "Cannot create the sensor.".to_string();
            page(
                &app,
                &ctx,
                StatusCode::INTERNAL_SERVER_ERROR,
                Some((m, false)),
                None,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
pub struct Revoke {
    id: i64,
}

pub async fn revoke(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<Revoke>,
) -> Result<Response, AppError> {
    match app.store.revoke_sensor(f.id, app.now()).await {
        Ok(true) => {
            let m = format!("Sensor {} revoked: its token is refused from now on.", f.id);
            page(&app, &ctx, StatusCode::OK, Some((m, true)), None).await
        }
        Ok(false) => {
            let m = format!("There is no active sensor {}.", f.id);
            page(&app, &ctx, StatusCode::NOT_FOUND, Some((m, false)), None).await
        }
        Err(e) => {
            tracing::error!("sensors: {}", chain(&e));
            let m = "Cannot revoke the sensor.".to_string();
            page(
                &app,
                &ctx,
                StatusCode::INTERNAL_SERVER_ERROR,
                Some((m, false)),
                None,
            )
            .await
        }
    }
}
