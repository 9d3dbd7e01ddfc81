//! The portal at rest: a database made before versioned migrations upgrades in place (its
//! clear signing key sealed, its data kept, its licenses still issued), signing-key secrets
//! never appear in the database files, a wrong or badly protected secret key and a database
//! newer than this build are refused with messages that say what to do, and every page carries
//! the security headers.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use portal::clock::FakeClock;
use portal::{Portal, PortalError, SCHEMA_VERSION, SecretKey};
use sqlx::Connection;

fn file_contains(path: &Path, needle: &str) -> bool {
    match std::fs::read(path) {
        Ok(bytes) => bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
        Err(_) => false,
    }
}

/// Whether the SQLite database in `dir` (main file, write-ahead log or shared memory) holds
/// `needle` anywhere, live or in free space.
fn sqlite_files_contain(dir: &Path, needle: &str) -> bool {
    ["portal.db", "portal.db-wal", "portal.db-shm"]
        .iter()
        .any(|f| file_contains(&dir.join(f), needle))
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("portal.db").display())
}

async fn open(dir: &Path, key_file: Option<&Path>) -> Result<Portal, PortalError> {
    let clock = FakeClock::new(noon(day("2026-11-28")));
    Portal::open_with_key_file(dir, None, key_file, Arc::new(clock)).await
}

fn open_err(r: Result<Portal, PortalError>) -> PortalError {
    match r {
        Ok(_) => panic!("the portal opened"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_portal_db_from_before_migrations_upgrades_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let old = make_legacy_db(&url).await;
    let body = armored_body(&old.key.to_armored());
    assert!(
        sqlite_files_contain(dir.path(), &body),
        "the legacy db has the clear key"
    );

    let w = world_in(dir, "2026-11-28", None).await;
    // Sealed, and no trace of the clear value left in free pages or the log.
    assert!(!sqlite_files_contain(w.dir.path(), &body));
    check_upgraded(&w, &old, &url).await;
    w.portal.close().await;
    assert!(!sqlite_files_contain(w.dir.path(), &body));

    // Opening again migrates nothing more and still signs.
    let dir = w.dir;
    let w = world_in(dir, "2026-11-29", None).await;
    assert_eq!(schema_rows(&url).await.len(), SCHEMA_VERSION as usize);
    w.terms(&old.token).await;
    w.portal.close().await;
}

#[tokio::test]
async fn signing_key_secrets_are_not_in_the_database_in_clear() {
    let w = World::sqlite("2026-11-28").await;
    w.portal.rotate_key("test").await.unwrap();
    w.portal.rotate_key("test").await.unwrap();
    let c = w.customer("Acme").await;
    let (_, token) = w.license(&c, 10, "2027-01-31").await;
    w.terms(&token).await;

    let key_file = w.dir.path().join("portal-secret.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is the owner's alone");
    }
    let secret = SecretKey::load_or_create(&key_file).unwrap();
    let keys = w.portal.keys().await.unwrap();
    assert_eq!(keys.len(), 3);
    let mut bodies = Vec::new();
    for k in &keys {
        assert!(k.secret.starts_with("enc1:"));
        let armored = secret.unseal(&k.key_id, &k.secret).unwrap();
        let key = license::SigningKey::from_armored(&armored).unwrap();
        assert_eq!(key.public().to_armored(), k.public);
        bodies.push(armored_body(&armored));
    }
    for body in &bodies {
        assert!(!sqlite_files_contain(w.dir.path(), body), "open pool");
    }
    w.portal.close().await;
    for body in &bodies {
        assert!(!sqlite_files_contain(w.dir.path(), body), "closed");
    }
}

#[tokio::test]
async fn a_wrong_secret_key_is_refused_naming_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), None).await.unwrap();
    let id = p.keys().await.unwrap()[0].key_id.clone();
    p.close().await;

    // The default file replaced by another key.
    let default_file = dir.path().join("portal-secret.key");
    std::fs::write(&default_file, "11".repeat(32)).unwrap();
    let e = open_err(open(dir.path(), None).await);
    assert!(matches!(e, PortalError::Unseal(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "signing key {id} cannot be decrypted with the portal secret key from {} \
             (is it the key this database was encrypted with?)",
            default_file.display()
        )
    );

    // Another file given: it is made (a new key), and does not open the database either.
    let other = tempfile::tempdir().unwrap();
    let other_file = other.path().join("elsewhere.key");
    let e = open_err(open(dir.path(), Some(&other_file)).await);
    assert!(e.to_string().contains(&format!(
        "signing key {id} cannot be decrypted with the portal secret key from {}",
        other_file.display()
    )));
    assert!(other_file.exists());

    // A key file that is not a key.
    std::fs::write(&default_file, "not a key\n").unwrap();
    let e = open_err(open(dir.path(), None).await);
    assert_eq!(
        e.to_string(),
        format!(
            "the portal secret key from {} is not 32 bytes in base64 or hex",
            default_file.display()
        )
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_key_file_others_may_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    open(dir.path(), None).await.unwrap().close().await;
    let file = dir.path().join("portal-secret.key");
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = open_err(open(dir.path(), None).await);
        assert!(matches!(e, PortalError::SecretKey(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "the portal secret key file {} may be read by group or others (mode {mode:04o}): run `chmod 600 {}`",
                file.display(),
                file.display()
            )
        );
    }
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    open(dir.path(), None).await.unwrap().close().await;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
    open(dir.path(), None).await.unwrap().close().await;
}

#[tokio::test]
async fn a_database_newer_than_this_build_is_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    open(dir.path(), None).await.unwrap().close().await;
    let future = SCHEMA_VERSION + 3;
    {
        let mut c = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO portal_schema (version, name, applied_at) VALUES ($1, 'from_the_future', 0)",
        )
        .bind(future)
        .execute(&mut c)
        .await
        .unwrap();
        c.close().await.unwrap();
    }
    let e = open_err(open(dir.path(), None).await);
    assert!(
        matches!(e, PortalError::SchemaTooNew { found, known } if found == future && known == SCHEMA_VERSION),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("schema version {future}"))
            && msg.contains(&format!("up to {SCHEMA_VERSION}")),
        "{msg}"
    );
    assert_eq!(
        schema_rows(&url).await.last().unwrap(),
        &(future, "from_the_future".to_string())
    );
}

#[tokio::test]
async fn pages_and_api_answers_carry_the_security_headers() {
    let w = World::sqlite("2026-11-28").await;
    let c = w.customer("Acme").await;
    let (id, token) = w.license(&c, 10, "2027-01-31").await;
    w.portal
        .add_user(
            "test",
            "acme",
            "acme-password",
            portal::Role::Customer,
            Some(&c),
        )
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let page = http.get(format!("{}/login", w.base)).send().await.unwrap();
    check_headers(page.headers());
    let html = page.text().await.unwrap();
    let start = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = &html[start..start + 64];
    let r = http
        .post(format!("{}/login", w.base))
        .form(&[
            ("csrf", csrf),
            ("user", "acme"),
            ("password", "acme-password"),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    // The license page shows the token: it must not be cached or framed.
    let r = http
        .get(format!("{}/services/{id}", w.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    check_headers(r.headers());
    assert!(r.text().await.unwrap().contains(&token));
    // Error pages and the API too.
    let r = http
        .get(format!("{}/services/SM-NOPE", w.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    check_headers(r.headers());
    let r = http
        .get(format!("{}/api/v1/keys", w.base))
        .send()
        .await
        .unwrap();
    check_headers(r.headers());
}

fn check_headers(h: &reqwest::header::HeaderMap) {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let csp = get("content-security-policy");
    assert!(csp.contains("script-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(get("x-frame-options"), "DENY");
    assert_eq!(get("x-content-type-options"), "nosniff");
    assert_eq!(get("referrer-policy"), "same-origin");
    assert_eq!(get("cache-control"), "no-store");
}
