//! The portal secret key from the environment variable. Alone in its test binary: it sets the
//! process environment, which no other test here may read at the same time.

use std::sync::Arc;

use portal::clock::FakeClock;
use portal::{Portal, PortalError, SECRET_KEY_ENV};

async fn open(
    dir: &std::path::Path,
    file: Option<&std::path::Path>,
) -> Result<Portal, PortalError> {
    Portal::open_with_key_file(dir, None, file, Arc::new(FakeClock::new(0))).await
}

#[tokio::test]
async fn the_secret_key_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    // SAFETY: the only test of this binary; nothing else reads or writes the environment.
    unsafe { std::env::set_var(SECRET_KEY_ENV, "ab".repeat(32)) };
    let p = open(dir.path(), None).await.unwrap();
    assert_eq!(
        p.secret_key_source(),
        "the environment variable SIPMETER_PORTAL_SECRET_KEY"
    );
    let id = p.keys().await.unwrap()[0].key_id.clone();
    p.close().await;
    assert!(
        !dir.path().join("portal-secret.key").exists(),
        "no key file when the variable gives the key"
    );

    // The same key in base64 opens it too.
    use base64::Engine;
    unsafe {
        std::env::set_var(
            SECRET_KEY_ENV,
            base64::engine::general_purpose::STANDARD.encode([0xab; 32]),
        )
    };
    open(dir.path(), None).await.unwrap().close().await;

    unsafe { std::env::set_var(SECRET_KEY_ENV, "cd".repeat(32)) };
    let e = match open(dir.path(), None).await {
        Ok(_) => panic!("opened with another key"),
        Err(e) => e,
    };
    assert!(
        e.to_string().starts_with(&format!(
            "signing key {id} cannot be decrypted with the portal secret key from the environment variable SIPMETER_PORTAL_SECRET_KEY"
        )),
        "{e}"
    );

    let file = dir.path().join("other.key");
    let e = match open(dir.path(), Some(&file)).await {
        Ok(_) => panic!("opened with two key sources"),
        Err(e) => e,
    };
    assert_eq!(
        e.to_string(),
        format!(
            "give the portal secret key either in SIPMETER_PORTAL_SECRET_KEY or as --secret-key-file {}, not both",
            file.display()
        )
    );
    assert!(!file.exists());
    unsafe { std::env::remove_var(SECRET_KEY_ENV) };
}
