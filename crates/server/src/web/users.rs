//! Settings › Users (admins add users with a role) and Settings › Password (everyone changes
//! their own). Users are kept by the store; passwords are hashed here, never stored in clear.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use store::Role;

use super::{Chrome, When, render};
use crate::auth::{self, LoginError, SESSION_COOKIE, check_login};
use crate::error::{AppError, Context, chain};
use crate::http::Ctx;
use crate::state::AppState;

/// Shortest password accepted for a new user or a change.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest: bounds the hashing work a request can ask for.
pub const MAX_PASSWORD_LEN: usize = 1024;

struct UserRow {
    name: String,
    role: &'static str,
    created: String,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    chrome: Chrome,
    users: Vec<UserRow>,
    message: Option<String>,
    message_class: &'static str,
}

async fn users_page(
    app: &AppState,
    ctx: &Ctx,
    code: StatusCode,
    message: Option<(String, bool)>,
) -> Result<Response, AppError> {
    let users = app
        .store
        .list_users()
        .await
        .log_as("users", "cannot read the users")?;
    let page = UsersPage {
        chrome: Chrome::new(app, &ctx.status, ctx.user.as_ref(), "settings-users"),
        users: users
            .into_iter()
            .map(|u| UserRow {
                name: u.name,
                role: u.role.as_str(),
                created: When::new(u.created, &app.license.tz).to_string(),
            })
            .collect(),
        message_class: if message.as_ref().is_some_and(|m| m.1) {
            "ok-text"
        } else {
            "error-text"
        },
        message: message.map(|m| m.0),
    };
    Ok((code, render(&page)).into_response())
}

pub async fn list(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    users_page(&app, &ctx, StatusCode::OK, None).await
}

/// A user name: 1 to 64 letters, digits and `._@-`, so it can be typed in a login form and a
/// Basic credential (no `:`) and shown anywhere without surprises.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

fn password_problem(pw: &str) -> Option<String> {
    let n = pw.chars().count();
    if n < MIN_PASSWORD_LEN {
        Some(format!(
            "The password must have at least {MIN_PASSWORD_LEN} characters."
        ))
    } else if pw.len() > MAX_PASSWORD_LEN {
        Some(format!(
            "The password must have at most {MAX_PASSWORD_LEN} bytes."
        ))
    } else {
        None
    }
}

async fn hash(pw: String) -> Option<String> {
    tokio::task::spawn_blocking(move || auth::hash_password(&pw).ok())
        .await
        .ok()
        .flatten()
}

#[derive(Deserialize)]
pub struct NewUser {
    name: String,
    role: String,
    password: String,
}

pub async fn create(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<NewUser>,
) -> Result<Response, AppError> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, Some((m, false)));
    let name = f.name.trim();
    let (code, msg) = if !valid_name(name) {
        bad("A user name has 1 to 64 letters, digits or . _ @ -".into())
    } else if let Some(p) = password_problem(&f.password) {
        bad(p)
    } else if let Some(role) = Role::parse(&f.role) {
        match hash(f.password).await {
            None => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(("Cannot hash the password.".to_string(), false)),
            ),
            Some(h) => match app.store.create_user(name, role, &h, app.now()).await {
                Ok(true) => (
                    StatusCode::OK,
                    Some((format!("User {name} ({}) created.", role.as_str()), true)),
                ),
                Ok(false) => bad(format!("A user called {name} exists already.")),
                Err(e) => {
                    tracing::error!("create user: {}", chain(&e));
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        Some(("Cannot store the user.".to_string(), false)),
                    )
                }
            },
        }
    } else {
        bad("The role is admin or viewer.".into())
    };
    users_page(&app, &ctx, code, msg).await
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    chrome: Chrome,
    message: Option<String>,
    message_class: &'static str,
}

fn password_page(
    app: &AppState,
    ctx: &Ctx,
    code: StatusCode,
    message: Option<(String, bool)>,
) -> Response {
    let page = PasswordPage {
        chrome: Chrome::new(app, &ctx.status, ctx.user.as_ref(), "settings-password"),
        message_class: if message.as_ref().is_some_and(|m| m.1) {
            "ok-text"
        } else {
            "error-text"
        },
        message: message.map(|m| m.0),
    };
    (code, render(&page)).into_response()
}

pub async fn password_form(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Response {
    password_page(&app, &ctx, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct PasswordChange {
    current: String,
    new: String,
}

pub async fn change_password(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Form(f): Form<PasswordChange>,
) -> Response {
    let Some(user) = ctx.user.clone() else {
        return password_page(&app, &ctx, StatusCode::UNAUTHORIZED, None);
    };
    // The current password again, with the login throttle: a session left open must not be
    // enough to take the account over.
    if let Err(e) = check_login(&app, &user.name, &f.current, ctx.peer.ip()).await {
        let m = match e {
            LoginError::Throttled(t) => t.message(),
            _ => "The current password is wrong.".to_string(),
        };
        return password_page(&app, &ctx, StatusCode::BAD_REQUEST, Some((m, false)));
    }
    if let Some(p) = password_problem(&f.new) {
        return password_page(&app, &ctx, StatusCode::BAD_REQUEST, Some((p, false)));
    }
    let Some(h) = hash(f.new).await else {
        return password_page(
            &app,
            &ctx,
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(("Cannot hash the password.".into(), false)),
        );
    };
    match app.store.set_password(&user.name, &h).await {
        Ok(true) => {
            // Other sessions of this user end: whoever knew the old password is logged out.
            if let Some(id) = auth::cookie(&headers, SESSION_COOKIE) {
                app.sessions.remove_user_except(&user.name, id);
            }
            password_page(
                &app,
                &ctx,
                StatusCode::OK,
                Some((
                    "Password changed; your other sessions are logged out.".into(),
                    true,
                )),
            )
        }
        _ => password_page(
            &app,
            &ctx,
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(("Cannot store the password.".into(), false)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passwords() {
        assert!(valid_name("eve") && valid_name("ops.team-1@example"));
        assert!(
            !valid_name("")
                && !valid_name("a:b")
                && !valid_name("a b")
                && !valid_name(&"x".repeat(65))
        );
        assert!(password_problem("short").is_some());
        assert!(password_problem("long enough").is_none());
        assert!(password_problem(&"x".repeat(2000)).is_some());
    }
}
