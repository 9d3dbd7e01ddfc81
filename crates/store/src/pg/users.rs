//! Users on PostgreSQL (see `crate::users`).

use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};

use crate::{Micros, Result, Role, StoreError, User};

const COLUMNS: &str = "id, name, role, password_hash, created_us";

fn user_of(row: &PgRow) -> Result<User> {
    let id: i64 = row.try_get("id")?;
    let role: String = row.try_get("role")?;
    Ok(User {
        id,
        name: row.try_get("name")?,
        role: Role::parse(&role).ok_or(StoreError::CorruptUser { user_id: id })?,
        password_hash: row.try_get("password_hash")?,
        created: row.try_get("created_us")?,
    })
}

pub(crate) async fn user_by_name(pool: &PgPool, name: &str) -> Result<Option<User>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE name = $1"))
        .bind(name)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(user_of).transpose()
}

pub(crate) async fn list_users(pool: &PgPool) -> Result<Vec<User>> {
    // COLLATE "C": by name bytewise, as SQLite orders them.
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM users ORDER BY name COLLATE \"C\""
    ))
    .fetch_all(pool)
    .await?;
    rows.iter().map(user_of).collect()
}

pub(crate) async fn create_user(
    pool: &PgPool,
    name: &str,
    role: Role,
    password_hash: &str,
    now: Micros,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO users (name, role, password_hash, created_us) VALUES ($1, $2, $3, $4) \
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

pub(crate) async fn set_password(pool: &PgPool, name: &str, password_hash: &str) -> Result<bool> {
    let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
        .bind(password_hash)
        .bind(name)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn count_users(pool: &PgPool) -> Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await?;
    Ok(n as u64)
}
