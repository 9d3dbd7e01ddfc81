//! Users on PostgreSQL (see `crate::users`).

use sqlx::postgres::PgPool;

use crate::users::{COLUMNS, UserRow};
use crate::{Micros, Result, Role, User};

pub(crate) async fn user_by_name(pool: &PgPool, name: &str) -> Result<Option<User>> {
    let row: Option<UserRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE name = $1"))
            .bind(name)
            .fetch_optional(pool)
            .await?;
    row.map(UserRow::into_user).transpose()
}

pub(crate) async fn list_users(pool: &PgPool) -> Result<Vec<User>> {
    // COLLATE "C": by name bytewise, as SQLite orders them.
    let rows: Vec<UserRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users ORDER BY name COLLATE \"C\""
    ))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(UserRow::into_user).collect()
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
