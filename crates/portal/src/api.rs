//! The API servers call (contract with the central server): `/api/v1/keys`,
//! `/api/v1/license`, `/api/v1/checkin`. No login: the token is the credential of Get
//! License; a check-in is believed when the installation key registered by Get License
//! signed it. Bodies are parsed by hand so every malformed one gets the contract's
//! `bad_request` naming the field, never axum's own rejection text.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::PortalError;
use crate::service::{Target, rfc3339};
use crate::trust::{InstallKey, SignedCheckin};

/// A portal error as the contract's JSON body.
pub struct ApiError(pub PortalError);

impl From<PortalError> for ApiError {
    fn from(e: PortalError) -> ApiError {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.0.code();
        let message = if status >= 500 {
            eprintln!("portal: {}", self.0);
            "internal error; see the portal log".to_string()
        } else {
            self.0.to_string()
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(json!({"error": code, "message": message}))).into_response()
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError(PortalError::bad(format!("request body: {e}"))))
}

pub async fn keys(State(app): State<AppState>) -> Result<Response, ApiError> {
    let keys: Vec<_> = app
        .portal
        .keys()
        .await?
        .into_iter()
        .map(|k| {
            json!({
                "key_id": k.key_id,
                "public_key": k.public,
                "created_at": rfc3339(k.created_at),
                "active": k.active,
            })
        })
        .collect();
    Ok(Json(json!({ "keys": keys })).into_response())
}

#[derive(Deserialize)]
struct LicenseRequest {
    token: String,
    hwid: Option<String>,
    domain: Option<String>,
    install_id: Option<String>,
    /// The installation's check-in key (armored), registered with the license.
    install_key: Option<String>,
    /// A server's automatic refresh: never moves the license (answers `superseded`).
    #[serde(default)]
    refresh: bool,
}

pub async fn license(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req: LicenseRequest = parse(&body)?;
    let target = Target::from_fields(req.hwid.as_deref(), req.domain.as_deref())?;
    let install = InstallKey::from_fields(req.install_id.as_deref(), req.install_key.as_deref())?;
    let issued = app
        .portal
        .get_license(
            "api:get-license",
            &req.token,
            &target,
            req.refresh,
            install.as_ref(),
        )
        .await?;
    Ok(Json(json!({
        "license": issued.license,
        "license_id": issued.license_id,
        "refresh_by": issued.refresh_by,
    }))
    .into_response())
}

pub async fn checkin(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req: SignedCheckin = parse(&body)?;
    let answer = app.portal.checkin(&req).await?;
    let v = answer.verdict;
    Ok(Json(json!({
        "concurrent": v.concurrent,
        "systems": v.systems,
        "allowed": v.allowed,
        "message": v.message(),
        "superseded": answer.superseded,
    }))
    .into_response())
}
