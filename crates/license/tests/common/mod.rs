//! Fixtures shared by the license tests: keys from fixed seeds, a typical license, a context.
#![allow(dead_code)]

use license::jiff::civil::{Date, date};
use license::jiff::tz::TimeZone;
use license::jiff::{Timestamp, ToSpan};
use license::{
    Binding, Certificate, Hwid, Keyring, LicenseTerms, Micros, SigningKey, VerifyContext,
};

pub const FILE: &str = "license.key";

/// The portal's signing key: certified by [`root_key`].
pub fn vendor_key() -> SigningKey {
    SigningKey::from_seed(&[42; 32])
}

/// A root of the tests' own (not compiled in): the keyring of [`keyring`] trusts it.
pub fn root_key() -> SigningKey {
    SigningKey::from_seed(&[99; 32])
}

/// `root`'s certificate of `key`, valid through 2025–2029.
pub fn certificate_by(root: &SigningKey, key: &SigningKey) -> Certificate {
    let from = noon(date(2025, 1, 1));
    let until = noon(date(2029, 12, 31));
    Certificate::issue(root, &key.public(), "portal.test", from, until).unwrap()
}

pub fn other_key() -> SigningKey {
    SigningKey::from_seed(&[7; 32])
}

/// Trusts [`root_key`] only: files verify through the certificate chain.
pub fn keyring() -> Keyring {
    let mut k = Keyring::empty();
    k.add_root(root_key().public());
    k
}

pub fn this_hwid() -> Hwid {
    "1111-2222-3333-4444".parse().unwrap()
}

pub fn other_hwid() -> Hwid {
    "AAAA-BBBB-CCCC-DDDD".parse().unwrap()
}

/// Noon UTC of `d`, as workspace micros.
pub fn noon(d: Date) -> Micros {
    d.at(12, 0, 0, 0)
        .to_zoned(TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_microsecond()
}

pub fn ts(d: Date) -> Timestamp {
    d.at(9, 30, 0, 0)
        .to_zoned(TimeZone::UTC)
        .unwrap()
        .timestamp()
}

/// A normal 100-channel subscription issued 2026-01-10, formal end 2026-12-31.
pub fn terms() -> LicenseTerms {
    let issued = date(2026, 1, 10);
    LicenseTerms {
        license_id: "L-2026-0001".into(),
        customer: "Example Telecom".into(),
        channels: 100,
        issued_at: ts(issued),
        formal_end: date(2026, 12, 31),
        grace_end: date(2027, 1, 20),
        cancelled: false,
        trial: false,
        emergency: false,
        binding: Binding::Hwid(this_hwid()),
        grants: vec![],
        refresh_by: Some(ts(issued.checked_add(400.days()).unwrap())),
    }
}

pub fn ctx<'a>(keyring: &'a Keyring, now: Micros) -> VerifyContext<'a> {
    VerifyContext {
        keyring,
        hwid: this_hwid(),
        domain: None,
        now,
        high_water: None,
        time_zone: &UTC,
    }
}

pub static UTC: TimeZone = TimeZone::UTC;

/// `t` signed by [`vendor_key`], carrying its certificate from [`root_key`].
pub fn signed(t: &LicenseTerms) -> String {
    let key = vendor_key();
    license::issue(t, &key, Some(&certificate_by(&root_key(), &key))).unwrap()
}
