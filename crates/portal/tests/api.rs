//! The server-facing API on a real portal: shapes and error codes of `/api/v1/keys`,
//! `/api/v1/license` and `/api/v1/checkin`, key rotation, re-binding by Get License, binding
//! mismatches and the concurrent-use verdicts.

mod common;

use common::*;
use serde_json::json;

async fn get_keys(w: &World) -> serde_json::Value {
    reqwest::get(format!("{}/api/v1/keys", w.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn keys_are_served_and_rotation_keeps_old_files_valid() {
    let w = World::sqlite("2026-11-28").await;
    let r = get_keys(&w).await;
    let keys = r["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let first = keys[0]["key_id"].as_str().unwrap().to_string();
    assert_eq!(first.len(), 16);
    assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(keys[0]["active"], true);
    let pk = license::PublicKey::from_armored(keys[0]["public_key"].as_str().unwrap()).unwrap();
    assert_eq!(pk.id().to_string(), first);
    keys[0]["created_at"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();

    let c = w.customer("Acme").await;
    let (_, token) = w.license(&c, 50, "2027-06-30").await;
    let (status, old_file) = w.get_license(&token, HWID_A).await;
    assert_eq!(status, 200);
    let old_text = old_file["license"].as_str().unwrap().to_string();

    let second = w.portal.rotate_key("test").await.unwrap();
    let r = get_keys(&w).await;
    let keys = r["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["key_id"], second.as_str());
    assert_eq!(keys[0]["active"], true);
    assert_eq!(keys[1]["key_id"], first.as_str());
    assert_eq!(keys[1]["active"], false);
    // signing.pub carries both: the old file and a new one both verify against it
    assert_eq!(w.keyring().len(), 2);
    let old = w.verify(&old_text, HWID_A, None).unwrap();
    assert_eq!(old.key_id.to_string(), first);
    let (_, new_file) = w.get_license(&token, HWID_A).await;
    let new = w
        .verify(new_file["license"].as_str().unwrap(), HWID_A, None)
        .unwrap();
    assert_eq!(new.key_id.to_string(), second);
}

#[tokio::test]
async fn license_shape_and_error_codes() {
    let w = World::sqlite("2026-11-28").await;
    let c = w.customer("Acme").await;
    let (id, token) = w.license(&c, 50, "2027-06-30").await;

    let (status, v) = w.get_license(&token, HWID_A).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["license_id"], id.as_str());
    let refresh: jiff::Timestamp = v["refresh_by"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        refresh.as_microsecond() - w.portal.now(),
        7 * DAY,
        "refresh_by = issue time + 7 days"
    );
    let t = w
        .verify(v["license"].as_str().unwrap(), HWID_A, None)
        .unwrap()
        .terms;
    assert_eq!(t.license_id, id);
    assert_eq!(t.customer, "Acme");
    assert_eq!(t.channels, 50);
    assert_eq!(t.formal_end, day("2027-06-30"));
    assert_eq!(t.grace_end, day("2027-07-20"));

    let cases = [
        (
            json!({"token": "ZZZZ-ZZZZ-ZZZZ-ZZZZ", "hwid": HWID_A}),
            404,
            "unknown_token",
            "ZZZZ",
        ),
        (
            json!({"token": "nope", "hwid": HWID_A}),
            400,
            "bad_request",
            "token",
        ),
        (
            json!({"token": token}),
            400,
            "bad_request",
            "hwid or domain",
        ),
        (
            json!({"token": token, "hwid": HWID_A, "domain": "a.example.com"}),
            400,
            "bad_request",
            "not both",
        ),
        (
            json!({"token": token, "hwid": "12"}),
            400,
            "bad_request",
            "hwid",
        ),
        (
            json!({"token": token, "domain": "bad domain"}),
            400,
            "bad_request",
            "domain",
        ),
        (json!({"hwid": HWID_A}), 400, "bad_request", "token"),
        (
            json!({"token": token, "domain": "pbx.example.com"}),
            409,
            "binding_mismatch",
            "hardware id",
        ),
    ];
    for (body, want_status, code, needle) in cases {
        let (status, v) = w.post("/api/v1/license", body.clone()).await;
        assert_eq!(status, want_status, "{body} -> {v}");
        assert_eq!(v["error"], code, "{body} -> {v}");
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{body} -> {v}"
        );
    }
    let r = w
        .http
        .post(format!("{}/api/v1/license", w.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "bad_request");
}

#[tokio::test]
async fn get_license_with_a_new_hwid_rebinds_and_is_audited() {
    let w = World::sqlite("2026-11-28").await;
    let c = w.customer("Acme").await;
    let (id, token) = w.license(&c, 50, "2027-06-30").await;
    let (_, a) = w.get_license(&token, HWID_A).await;
    let file_a = a["license"].as_str().unwrap().to_string();
    w.verify(&file_a, HWID_A, None).unwrap();
    // the file copied to another machine: "another hwid"
    let err = w.verify(&file_a, HWID_B, None).unwrap_err();
    assert!(
        err.to_string()
            .contains("license file license.key is for another hwid"),
        "{err}"
    );
    // Get License from the new machine moves the license there
    let (status, b) = w.get_license(&token, HWID_B).await;
    assert_eq!(status, 200, "{b}");
    let t = w
        .verify(b["license"].as_str().unwrap(), HWID_B, None)
        .unwrap()
        .terms;
    assert_eq!(t.binding, license::Binding::Hwid(HWID_B.parse().unwrap()));
    let audit = w.portal.audit_log(Some(&id), 100).await.unwrap();
    let rebind = audit
        .iter()
        .find(|a| a.action == "rebind")
        .expect("rebind audited");
    assert!(
        rebind.details.contains(HWID_A) && rebind.details.contains(HWID_B),
        "{rebind:?}"
    );
    assert_eq!(rebind.who, "api:get-license");
}

#[tokio::test]
async fn domain_binding_and_mismatch() {
    let w = World::sqlite("2026-11-28").await;
    let c = w.customer("Cloud").await;
    let (id, token) = w.license(&c, 20, "2027-06-30").await;
    w.get_license(&token, HWID_A).await;
    w.portal
        .bind(
            "support:test",
            &id,
            portal::Target::Domain("pbx.example.com".into()),
        )
        .await
        .unwrap();
    let (status, v) = w.get_license(&token, HWID_A).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("binding_mismatch")),
        "{v}"
    );
    let (status, v) = w
        .post(
            "/api/v1/license",
            json!({"token": token, "domain": "other.example.com"}),
        )
        .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("binding_mismatch")),
        "{v}"
    );
    let (status, v) = w
        .post(
            "/api/v1/license",
            json!({"token": token, "domain": "PBX.example.com.", "install_id": "x"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let text = v["license"].as_str().unwrap();
    let t = w
        .verify(text, HWID_B, Some("pbx.example.com"))
        .unwrap()
        .terms;
    assert_eq!(
        t.binding,
        license::Binding::Domain("pbx.example.com".into())
    );
    // works on any hardware under its domain, nowhere else
    w.verify(text, HWID_A, Some("pbx.example.com")).unwrap();
    assert!(w.verify(text, HWID_A, Some("evil.example.com")).is_err());
    // and back to hardware binding
    w.portal
        .bind(
            "support:test",
            &id,
            portal::Target::Hwid(HWID_B.parse().unwrap()),
        )
        .await
        .unwrap();
    let (status, _) = w
        .post(
            "/api/v1/license",
            json!({"token": token, "domain": "pbx.example.com"}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(w.get_license(&token, HWID_B).await.0, 200);
}

#[tokio::test]
async fn checkin_verdicts() {
    let w = World::sqlite("2026-11-28").await;
    let c = w.customer("Acme").await;
    let (id, _) = w.license(&c, 50, "2027-06-30").await;

    let (status, v) = w.checkin_as("SM-NOPE", "i", "b", HWID_A).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (404, Some("unknown_license"))
    );
    let (status, v) = w
        .post(
            "/api/v1/checkin",
            signed_checkin(
                &json!({"license_id": id, "hwid": HWID_A}),
                &install_key("i"),
            ),
        )
        .await;
    assert_eq!((status, v["error"].as_str()), (400, Some("bad_request")));
    assert!(v["message"].as_str().unwrap().contains("install_id"), "{v}");

    // one server, then an identical clone (same hwid + install id, another boot id)
    let v = w.checkin(&id, "inst-1", "boot-a").await;
    assert_eq!(
        v,
        json!({"concurrent": false, "systems": 1, "allowed": 1, "message": null, "superseded": false})
    );
    w.clock.advance(MIN);
    w.checkin(&id, "inst-1", "boot-b").await;
    w.clock.advance(9 * MIN);
    w.checkin(&id, "inst-1", "boot-a").await;
    w.clock.advance(MIN);
    let v = w.checkin(&id, "inst-1", "boot-b").await;
    assert_eq!(
        v,
        json!({"concurrent": true, "systems": 2, "allowed": 1,
               "message": "license used concurrently by 2 systems", "superseded": false})
    );
    let view = w
        .portal
        .view(w.portal.license(&id).await.unwrap())
        .await
        .unwrap();
    assert!(view.verdict.concurrent);
    assert_eq!(view.checkins.len(), 2);

    // the clones stop; 31 minutes later both are out of the live window
    w.clock.advance(31 * MIN);
    let v = w.checkin(&id, "inst-2", "boot-c").await;
    assert_eq!(v["systems"], 1);
    // a reboot: boot-c stops, boot-d starts after its last check-in
    w.clock.advance(10 * MIN);
    w.checkin(&id, "inst-2", "boot-c").await;
    w.clock.advance(MIN);
    let v = w.checkin(&id, "inst-2", "boot-d").await;
    assert_eq!(
        v["concurrent"], false,
        "a reboot is not concurrent use: {v}"
    );
    assert_eq!(v["systems"], 1);
    w.clock.advance(10 * MIN);
    let v = w.checkin(&id, "inst-2", "boot-d").await;
    assert_eq!(v["systems"], 1);
    // a month later only the boots seen within 30 days are kept
    assert_eq!(w.portal.checkins(&id).await.unwrap().len(), 4);
    w.clock.advance(30 * DAY);
    w.checkin(&id, "inst-2", "boot-d").await;
    let kept: Vec<String> = w
        .portal
        .checkins(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.boot_id)
        .collect();
    assert_eq!(kept, vec!["boot-d".to_string()]);
}

#[tokio::test]
async fn concurrent_grant_allows_two_systems_until_its_day_inclusive() {
    let w = World::sqlite("2026-12-01").await;
    let c = w.customer("Movers").await;
    let (id, token) = w.license(&c, 50, "2027-06-30").await;
    w.portal
        .allow_concurrent("support:test", &id, 2, day("2026-12-10"))
        .await
        .unwrap();
    let t = w.terms(&token).await;
    assert_eq!(
        t.grants,
        vec![license::Grant::Concurrent {
            systems: 2,
            until: day("2026-12-10")
        }]
    );
    // on the grant's last day: two systems running at once are allowed
    w.set_day("2026-12-10");
    w.checkin(&id, "old", "boot-old").await;
    w.checkin(&id, "new", "boot-new").await;
    w.clock.advance(10 * MIN);
    w.checkin(&id, "old", "boot-old").await;
    let v = w.checkin(&id, "new", "boot-new").await;
    assert_eq!(
        v,
        json!({"concurrent": false, "systems": 2, "allowed": 2, "message": null, "superseded": false})
    );
    // the day after, the same two systems are flagged
    w.set_day("2026-12-11");
    w.checkin(&id, "old", "boot-old").await;
    let v = w.checkin(&id, "new", "boot-new").await;
    assert_eq!(v["allowed"], 1, "{v}");
    assert_eq!(v["concurrent"], true, "{v}");
    assert_eq!(v["message"], "license used concurrently by 2 systems");
    assert!(
        w.terms(&token).await.grants.is_empty(),
        "an ended grant is not carried"
    );
}

#[tokio::test]
async fn only_a_registered_installation_can_check_in() {
    let w = World::sqlite("2026-12-01").await;
    let c = w.customer("Signers").await;
    let (id, _) = w.license(&c, 50, "2027-06-30").await;

    // Knowing the license id is not enough: an installation Get License never saw.
    let (status, v) = w.checkin_as(&id, "stranger", "boot-x", HWID_A).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (401, Some("unregistered_install")),
        "{v}"
    );

    w.register(&id, "inst-1").await;
    assert_eq!(w.checkin(&id, "inst-1", "boot-a").await["systems"], 1);

    // The registered install id with a key of the forger's: bad signature, nothing counted.
    let at = license::timestamp(w.portal.now()).unwrap().to_string();
    let c1 = json!({"license_id": id, "hwid": HWID_A, "install_id": "inst-1",
                    "boot_id": "forged-boot", "version": "0", "at": at});
    let (status, v) = w
        .post(
            "/api/v1/checkin",
            signed_checkin(&c1, &install_key("forger")),
        )
        .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (401, Some("bad_signature")),
        "{v}"
    );
    // A genuine signature over other bytes than those sent.
    let mut body = signed_checkin(&c1, &install_key("inst-1"));
    body["checkin"] = json!(
        body["checkin"]
            .as_str()
            .unwrap()
            .replace("forged-boot", "other-boot")
    );
    let (status, _) = w.post("/api/v1/checkin", body).await;
    assert_eq!(status, 401);
    assert_eq!(
        w.portal.checkins(&id).await.unwrap().len(),
        1,
        "no forged boot recorded"
    );

    // A genuine check-in replayed an hour later is stale.
    let genuine = signed_checkin(&c1, &install_key("inst-1"));
    w.clock.advance(60 * MIN);
    let (status, v) = w.post("/api/v1/checkin", genuine).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("stale_checkin")),
        "{v}"
    );
}

#[tokio::test]
async fn a_moved_license_is_superseded_for_the_old_system() {
    let w = World::sqlite("2026-12-01").await;
    let c = w.customer("Movers").await;
    let (id, token) = w.license(&c, 50, "2027-06-30").await;
    w.register(&id, "old").await; // bound to HWID_A
    assert_eq!(w.checkin(&id, "old", "b1").await["superseded"], false);

    // The operator moves it to HWID_B with Get License there.
    assert_eq!(w.get_license(&token, HWID_B).await.0, 200);
    // The old system's next check-in and automatic refresh both hear "superseded" ...
    let (status, v) = w.checkin_as(&id, "old", "b1", HWID_A).await;
    assert_eq!(
        (status, v["superseded"].as_bool()),
        (200, Some(true)),
        "{v}"
    );
    let (status, v) = w
        .post(
            "/api/v1/license",
            json!({"token": token, "hwid": HWID_A, "refresh": true}),
        )
        .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("superseded")),
        "{v}"
    );
    // ... and the refresh did not take the license back.
    let row = w.portal.license(&id).await.unwrap();
    assert_eq!(row.binding.to_string(), format!("hwid {HWID_B}"));
    // The new system is not superseded.
    let (_, v) = w.checkin_as(&id, "old", "b1", HWID_B).await;
    assert_eq!(v["superseded"], false, "{v}");
}

#[tokio::test]
async fn served_files_carry_the_certificate_and_offline_files_no_refresh_by() {
    let w = World::sqlite("2026-12-01").await;
    let c = w.customer("Chain").await;
    let (id, token) = w.license(&c, 50, "2027-06-30").await;
    let (status, v) = w.get_license(&token, HWID_A).await;
    assert_eq!(status, 200, "{v}");
    let text = v["license"].as_str().unwrap();
    let parsed = license::SignedLicense::parse(text, "license.key").unwrap();
    let cert = parsed.certificate.expect("a certificate is carried");
    assert_eq!(cert.key.id(), parsed.key_id);
    assert_eq!(
        cert.terms.issuer,
        license::dev_root_signing_key().public().id().to_string()
    );
    assert!(
        w.verify(text, HWID_A, None)
            .unwrap()
            .terms
            .refresh_by
            .is_some()
    );
    // Without the roots of this build nothing verifies: the chain is what makes it count.
    let ctx = license::VerifyContext {
        keyring: &license::Keyring::empty(),
        hwid: HWID_A.parse().unwrap(),
        domain: None,
        now: w.portal.now(),
        high_water: None,
        time_zone: &jiff::tz::TimeZone::UTC,
    };
    assert_eq!(
        license::verify(text, "license.key", &ctx)
            .unwrap_err()
            .code(),
        "untrusted_issuer"
    );

    let request =
        json!({"sipmeter_license_request": 1, "token": token, "hwid": HWID_A}).to_string();
    let issued = w.portal.offline("test", &request).await.unwrap();
    assert_eq!(issued.refresh_by, None);
    let t = w.verify(&issued.license, HWID_A, None).unwrap().terms;
    assert_eq!((t.license_id, t.refresh_by), (id, None));

    // A rotated key is certified too (development portal), and old files still verify.
    w.portal.rotate_key("test").await.unwrap();
    let (_, v2) = w.get_license(&token, HWID_A).await;
    let new = v2["license"].as_str().unwrap();
    assert_ne!(
        license::SignedLicense::parse(new, "license.key")
            .unwrap()
            .key_id,
        license::SignedLicense::parse(text, "license.key")
            .unwrap()
            .key_id
    );
    assert!(w.verify(new, HWID_A, None).is_ok());
    assert!(w.verify(text, HWID_A, None).is_ok());
}
