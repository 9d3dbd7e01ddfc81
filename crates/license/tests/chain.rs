//! The trust chain root → certificate → signing key → license: only a key a trusted root
//! certified, inside its validity, makes a license count.

mod common;

use common::*;
use license::jiff::civil::date;
use license::{Certificate, Keyring, SignedLicense, SigningKey, verify};

fn now() -> i64 {
    noon(date(2026, 3, 1))
}

fn code(file: &str, ring: &Keyring, at: i64) -> &'static str {
    match verify(file, FILE, &ctx(ring, at)) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

#[test]
fn an_expired_or_not_yet_valid_certificate_is_refused() {
    let key = vendor_key();
    let cert = Certificate::issue(
        &root_key(),
        &key.public(),
        "portal.test",
        noon(date(2026, 1, 1)),
        noon(date(2026, 2, 1)),
    )
    .unwrap();
    let file = license::issue(&terms(), &key, Some(&cert)).unwrap();
    let ring = keyring();
    assert_eq!(code(&file, &ring, noon(date(2026, 1, 20))), "ok");
    let e = verify(&file, FILE, &ctx(&ring, now())).unwrap_err();
    assert_eq!(e.code(), "untrusted_issuer");
    assert!(
        e.to_string()
            .starts_with("license file license.key was not issued by the vendor: the certificate of its signing key"),
        "{e}"
    );
    assert!(e.to_string().contains("expired"), "{e}");
    assert_eq!(
        code(&file, &ring, noon(date(2025, 12, 1))),
        "untrusted_issuer"
    );
}

#[test]
fn a_certificate_from_another_root_is_refused() {
    let key = vendor_key();
    let stranger = SigningKey::from_seed(&[3; 32]);
    let file = license::issue(&terms(), &key, Some(&certificate_by(&stranger, &key))).unwrap();
    assert_eq!(code(&file, &keyring(), now()), "untrusted_issuer");
    // The compiled-in roots do not know the tests' root either.
    assert_eq!(
        code(&signed(&terms()), &Keyring::builtin(), now()),
        "untrusted_issuer"
    );
}

#[test]
fn a_rotated_key_needs_only_its_new_certificate() {
    let old = signed(&terms());
    let new_key = SigningKey::from_seed(&[43; 32]);
    let mut t = terms();
    t.channels = 200;
    let new = license::issue(&t, &new_key, Some(&certificate_by(&root_key(), &new_key))).unwrap();
    let ring = keyring();
    assert_eq!(code(&old, &ring, now()), "ok");
    assert_eq!(code(&new, &ring, now()), "ok");
    assert_eq!(
        verify(&new, FILE, &ctx(&ring, now())).unwrap().key_id,
        new_key.public().id()
    );
    // Issuing with a certificate of another key is refused before signing.
    let mismatch = license::issue(
        &t,
        &new_key,
        Some(&certificate_by(&root_key(), &vendor_key())),
    );
    assert!(mismatch.is_err());
}

#[test]
fn every_changed_byte_of_the_carried_certificate_is_refused() {
    let file = signed(&terms());
    let parsed = SignedLicense::parse(&file, FILE).unwrap();
    let cert = parsed.certificate.clone().unwrap().body();
    let ring = keyring();
    for i in 0..cert.len() {
        for bit in [0x01u8, 0x10, 0x80] {
            let mut bad = cert.clone();
            bad[i] ^= bit;
            let Ok(c) = Certificate::from_body(&bad) else {
                continue;
            };
            let forged = SignedLicense::from_parts(
                parsed.key_id,
                parsed.signature(),
                parsed.payload().to_vec(),
                Some(c),
            );
            assert_ne!(
                code(&forged.to_armored(), &ring, now()),
                "ok",
                "certificate byte {i} ^ {bit:#x}"
            );
        }
    }
}

#[test]
fn a_directly_trusted_key_needs_no_certificate_in_a_development_build() {
    let key = SigningKey::from_seed(&[8; 32]);
    let file = license::issue(&terms(), &key, None).unwrap();
    let mut ring = keyring();
    assert_eq!(code(&file, &ring, now()), "untrusted_issuer");
    ring.trust_signing_key(key.public());
    assert_eq!(code(&file, &ring, now()), "ok");
}

#[test]
fn the_development_root_is_trusted_only_in_a_development_build() {
    let dev_root = license::dev_root_signing_key();
    const { assert!(license::DEVELOPMENT_BUILD) };
    assert!(Keyring::builtin().root(dev_root.public().id()).is_some());
    let key = vendor_key();
    let file = license::issue(&terms(), &key, Some(&certificate_by(&dev_root, &key))).unwrap();
    assert_eq!(code(&file, &Keyring::builtin(), now()), "ok");
    // The committed secret half is the development root's, never a compiled-in root's.
    let roots_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("keys");
    let name = format!("root-{}.pub", dev_root.public().id());
    assert!(!roots_dir.join(name).exists());
}
