//! Users of the GUI and the API. The store only keeps them; hashing and checking passwords
//! is the server's job, so this module never sees a clear-text password.

use crate::{Micros, Result, StoreError};

/// What a user may do. Admins change settings (the license, users); viewers only look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

/// A stored user. `password_hash` is a PHC string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub created: Micros,
}

pub(crate) const COLUMNS: &str = "id, name, role, password_hash, created_us";

/// A `users` row as both backends select it (`COLUMNS`).
#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: i64,
    name: String,
    role: String,
    password_hash: String,
    created_us: i64,
}

impl UserRow {
    pub(crate) fn into_user(self) -> Result<User> {
        Ok(User {
            id: self.id,
            name: self.name,
            role: Role::parse(&self.role).ok_or(StoreError::CorruptUser { user_id: self.id })?,
            password_hash: self.password_hash,
            created: self.created_us,
        })
    }
}

pub(crate) async fn user_by_name(pool: &sqlx::SqlitePool, name: &str) -> Result<Option<User>> {
    let row: Option<UserRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE name = ?"))
            .bind(name)
            .fetch_optional(pool)
            .await?;
    row.map(UserRow::into_user).transpose()
}

pub(crate) async fn list_users(pool: &sqlx::SqlitePool) -> Result<Vec<User>> {
    let rows: Vec<UserRow> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM users ORDER BY name"))
        .fetch_all(pool)
        .await?;
    rows.into_iter().map(UserRow::into_user).collect()
}

pub(crate) async fn create_user(
    pool: &sqlx::SqlitePool,
    name: &str,
    role: Role,
    password_hash: &str,
    now: Micros,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO users (name, role, password_hash, created_us) VALUES (?, ?, ?, ?) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(role.as_str())
    .bind(password_hash)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn set_password(
    pool: &sqlx::SqlitePool,
    name: &str,
    password_hash: &str,
) -> Result<bool> {
    let done = sqlx::query("UPDATE users SET password_hash = ? WHERE name = ?")
        .bind(password_hash)
        .bind(name)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn count_users(pool: &sqlx::SqlitePool) -> Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await?;
    Ok(n as u64)
}
