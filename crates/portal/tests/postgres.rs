//! The same portal on PostgreSQL (127.0.0.1:5432): a database of its own per run, dropped at
//! the end. Covers the store end to end: schema, keys, customers, licenses, orders, grants,
//! check-in upserts and verdicts, the audit log's serial ids and reopening an existing
//! database.

mod common;

use common::*;
use portal::{Backend, OrderRequest};
use sqlx::Connection;

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

struct TempDb {
    name: String,
}

impl TempDb {
    async fn create() -> TempDb {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("portal_test_{}_{nanos}", std::process::id());
        let mut c = sqlx::PgConnection::connect(ADMIN_URL)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .unwrap();
        TempDb { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    async fn drop_db(self) {
        let mut c = sqlx::PgConnection::connect(ADMIN_URL).await.unwrap();
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut c)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn portal_on_postgres() {
    let db = TempDb::create().await;
    let w = World::start("2026-11-28", Some(&db.url())).await;
    assert_eq!(w.portal.backend(), Backend::Postgres);
    let c = w.customer("Acme on PG").await;
    let (id, token) = w.license(&c, 50, "2027-01-31").await;
    w.portal
        .add_user(
            "test",
            "pg-user",
            "pg-user-pass",
            portal::Role::Customer,
            Some(&c),
        )
        .await
        .unwrap();
    assert!(
        w.portal
            .login("pg-user", "pg-user-pass")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        w.portal
            .login("pg-user", "nope-nope")
            .await
            .unwrap()
            .is_none()
    );

    // renewal + upgrade through orders
    let r = w
        .portal
        .place_order("t", &id, OrderRequest::Renewal { months: 12 })
        .await
        .unwrap();
    let u = w
        .portal
        .place_order(
            "t",
            &id,
            OrderRequest::Upgrade {
                tier_id: "T100".into(),
            },
        )
        .await
        .unwrap();
    let t = w.terms(&token).await;
    assert_eq!((t.channels, t.formal_end), (50, day("2027-01-31")));
    w.portal.order_paid("t", &r.id).await.unwrap();
    w.portal.order_paid("t", &u.id).await.unwrap();
    let t = w.terms(&token).await;
    assert_eq!(
        (t.channels, t.formal_end, t.grace_end),
        (100, day("2028-01-31"), day("2028-02-20"))
    );

    // grants and check-ins (the upsert), verdicts
    w.portal
        .allow_concurrent("t", &id, 2, day("2026-11-28"))
        .await
        .unwrap();
    w.checkin(&id, "i", "b1").await;
    w.checkin(&id, "i", "b2").await;
    w.clock.advance(MIN);
    w.checkin(&id, "i", "b1").await;
    let v = w.checkin(&id, "i", "b2").await;
    assert_eq!(
        (
            v["systems"].as_u64(),
            v["allowed"].as_u64(),
            v["concurrent"].as_bool()
        ),
        (Some(2), Some(2), Some(false))
    );
    w.set_day("2026-11-29");
    w.checkin(&id, "i", "b1").await;
    let v = w.checkin(&id, "i", "b2").await;
    assert_eq!(v["concurrent"], true, "{v}");
    assert_eq!(w.portal.checkins(&id).await.unwrap().len(), 2);

    // rebind, cancel, key rotation, audit order
    assert_eq!(w.get_license(&token, HWID_B).await.0, 200);
    w.portal.cancel("t", &id).await.unwrap();
    let key2 = w.portal.rotate_key("t").await.unwrap();
    let audit = w.portal.audit_log(None, 100).await.unwrap();
    // A development portal certifies each new key with the development root at once.
    assert_eq!(
        (audit[0].action.as_str(), audit[1].action.as_str()),
        ("certify_key", "rotate_key")
    );
    assert!(audit[0].details.contains(&key2), "{}", audit[0].details);
    assert!(
        audit.windows(2).all(|p| p[0].seq > p[1].seq),
        "serial ids, newest first"
    );
    for action in [
        "add_customer",
        "add_license",
        "order_paid",
        "concurrent",
        "rebind",
        "cancel",
    ] {
        assert!(audit.iter().any(|a| a.action == action), "{action}");
    }

    // reopening the database keeps everything and creates no second key
    w.portal.close().await;
    let again = portal::Portal::open(
        w.dir.path(),
        Some(&db.url()),
        std::sync::Arc::new(w.clock.clone()),
    )
    .await
    .unwrap();
    let keys = again.keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].key_id, key2);
    assert!(again.license(&id).await.unwrap().cancelled);
    again.close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_postgres_portal_from_before_migrations_upgrades_in_place() {
    let db = TempDb::create().await;
    let old = make_legacy_db(&db.url()).await;
    let w = world_in(tempfile::tempdir().unwrap(), "2026-11-28", Some(&db.url())).await;
    check_upgraded(&w, &old, &db.url()).await;
    w.portal.close().await;

    // Opening again migrates nothing more.
    let again = portal::Portal::open(
        w.dir.path(),
        Some(&db.url()),
        std::sync::Arc::new(w.clock.clone()),
    )
    .await
    .unwrap();
    assert_eq!(
        schema_rows(&db.url()).await.len(),
        portal::SCHEMA_VERSION as usize
    );
    again.close().await;

    // A database a newer portal migrated is refused.
    let future = portal::SCHEMA_VERSION + 1;
    let mut c = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    sqlx::query("INSERT INTO portal_schema (version, name, applied_at) VALUES ($1, 'next', 0)")
        .bind(future)
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let r = portal::Portal::open(
        w.dir.path(),
        Some(&db.url()),
        std::sync::Arc::new(w.clock.clone()),
    )
    .await;
    match r {
        Err(portal::PortalError::SchemaTooNew { found, known }) => {
            assert_eq!((found, known), (future, portal::SCHEMA_VERSION));
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a newer database opened"),
    }
    db.drop_db().await;
}
