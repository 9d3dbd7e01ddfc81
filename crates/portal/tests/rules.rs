//! The date and limit rules end to end: each test gets a file from the real portal's API,
//! verifies it as a server would, and checks the dates and limits signed into it.

mod common;

use common::*;
use portal::OrderRequest;

#[tokio::test]
async fn renewal_extends_from_the_previous_formal_end_not_the_payment_day() {
    let w = World::sqlite("2026-11-28").await;
    let c = w.customer("Acme").await;
    let (id, token) = w.license(&c, 50, "2027-01-31").await;
    let order = w
        .portal
        .place_order("customer:acme", &id, OrderRequest::Renewal { months: 12 })
        .await
        .unwrap();
    // pending and processing orders change nothing
    assert_eq!(w.terms(&token).await.formal_end, day("2027-01-31"));
    w.portal
        .order_processing("support:s", &order.id)
        .await
        .unwrap();
    assert_eq!(w.terms(&token).await.formal_end, day("2027-01-31"));
    // paid six weeks early: the new year starts after the old formal end
    w.set_day("2026-12-15");
    w.portal.order_paid("support:s", &order.id).await.unwrap();
    let t = w.terms(&token).await;
    assert_eq!(t.formal_end, day("2028-01-31"));
    assert_eq!(t.grace_end, day("2028-02-20"));
    assert!(!t.cancelled && !t.trial);
    // a second, monthly renewal continues from there (month-end stays the month end)
    let o = w
        .portal
        .place_order("customer:acme", &id, OrderRequest::Renewal { months: 1 })
        .await
        .unwrap();
    w.portal.order_paid("support:s", &o.id).await.unwrap();
    assert_eq!(w.terms(&token).await.formal_end, day("2028-02-29"));
    // paying twice is refused
    assert!(w.portal.order_paid("support:s", &o.id).await.is_err());
    assert_eq!(w.terms(&token).await.formal_end, day("2028-02-29"));
}

#[tokio::test]
async fn late_renewal_still_counts_from_the_previous_formal_end() {
    let w = World::sqlite("2026-11-20").await;
    let c = w.customer("Late").await;
    let (id, token) = w.license(&c, 30, "2026-11-20").await;
    // in the grace period: still served
    w.set_day("2026-12-10");
    let t = w.terms(&token).await;
    assert_eq!(t.grace_end, day("2026-12-10"));
    // past the grace end: ended
    w.set_day("2026-12-11");
    let (status, v) = w.get_license(&token, HWID_A).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (410, Some("license_ended")),
        "{v}"
    );
    // renewed three weeks after the formal end: the paid month is Nov 21 - Dec 20
    let o = w
        .portal
        .place_order("customer:late", &id, OrderRequest::Renewal { months: 1 })
        .await
        .unwrap();
    w.portal.order_paid("support:s", &o.id).await.unwrap();
    let t = w.terms(&token).await;
    assert_eq!(t.formal_end, day("2026-12-20"));
    assert_eq!(t.grace_end, day("2027-01-09"));
}

#[tokio::test]
async fn cancelled_service_ends_at_the_formal_end() {
    let w = World::sqlite("2026-11-28").await;
    let c = w.customer("Leaving").await;
    let (id, token) = w.license(&c, 40, "2027-01-31").await;
    let (control_id, control_token) = w.license(&c, 40, "2027-01-31").await;
    w.portal.cancel("support:s", &id).await.unwrap();
    let t = w.terms(&token).await;
    assert!(t.cancelled);
    assert_eq!(t.formal_end, day("2027-01-31"));
    assert_eq!(t.grace_end, day("2027-01-31"));
    w.set_day("2027-01-31");
    assert_eq!(w.get_license(&token, HWID_A).await.0, 200);
    w.set_day("2027-02-01");
    let (status, v) = w.get_license(&token, HWID_A).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (410, Some("license_ended")),
        "{v}"
    );
    // the same license not cancelled runs through its grace period
    let t = w.terms(&control_token).await;
    assert_eq!(t.grace_end, day("2027-02-20"));
    w.set_day("2027-02-20");
    assert_eq!(w.get_license(&control_token, HWID_A).await.0, 200);
    w.set_day("2027-02-21");
    assert_eq!(w.get_license(&control_token, HWID_A).await.0, 410);
    assert_ne!(id, control_id);
}

#[tokio::test]
async fn trial_and_emergency_trial_last_thirty_days() {
    let w = World::sqlite("2026-11-28").await;
    let c = w.customer("Trying").await;
    let trial = w
        .portal
        .add_license("test", &c, 10, None, true, portal::BindingState::Hwid(None))
        .await
        .unwrap();
    let t = w.terms(&trial.token).await;
    assert!(t.trial);
    assert_eq!(t.formal_end, day("2026-12-28"));
    assert_eq!(t.grace_end, day("2026-12-28"));
    // a trial cannot be given another length
    assert!(
        w.portal
            .add_license(
                "test",
                &c,
                10,
                Some(day("2027-01-28")),
                true,
                portal::BindingState::Hwid(None)
            )
            .await
            .is_err()
    );

    let (paid_id, _) = w.license(&c, 75, "2026-11-30").await;
    w.set_day("2026-12-05");
    let emergency = w
        .portal
        .emergency_trial("support:s", &paid_id)
        .await
        .unwrap();
    let t = w.terms(&emergency.token).await;
    assert!(t.emergency);
    let audit = w.portal.audit_log(Some(&emergency.id), 10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "emergency_trial" && a.details.contains(&paid_id)),
        "{audit:?}"
    );
    assert_eq!(t.channels, 75, "same limit as the license it stands in for");
    assert_eq!(t.formal_end, day("2027-01-04"));
    assert_eq!(t.grace_end, day("2027-01-04"));
    w.set_day("2027-01-04");
    assert_eq!(w.get_license(&emergency.token, HWID_A).await.0, 200);
    w.set_day("2027-01-05");
    assert_eq!(w.get_license(&emergency.token, HWID_A).await.0, 410);
    assert_eq!(w.get_license(&trial.token, HWID_A).await.0, 410);
}

#[tokio::test]
async fn upgrade_changes_the_limit_only_once_its_order_is_completed() {
    let w = World::sqlite("2026-11-28").await;
    let c = w.customer("Growing").await;
    let (id, token) = w.license(&c, 50, "2027-06-30").await;
    let order = w
        .portal
        .place_order(
            "customer:g",
            &id,
            OrderRequest::Upgrade {
                tier_id: "T200".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(order.channels, Some(200));
    assert_eq!(
        w.terms(&token).await.channels,
        50,
        "pending changes nothing"
    );
    w.portal
        .order_processing("support:s", &order.id)
        .await
        .unwrap();
    assert_eq!(
        w.terms(&token).await.channels,
        50,
        "processing changes nothing"
    );
    w.clock.advance(MIN);
    w.portal.order_paid("support:s", &order.id).await.unwrap();
    let t = w.terms(&token).await;
    assert_eq!(t.channels, 200);
    assert_eq!(
        t.formal_end,
        day("2027-06-30"),
        "an upgrade does not move dates"
    );
    let view = w
        .portal
        .view(w.portal.license(&id).await.unwrap())
        .await
        .unwrap();
    assert_eq!(view.limit, 200);
    // unknown tiers are refused
    assert!(
        w.portal
            .place_order(
                "customer:g",
                &id,
                OrderRequest::Upgrade {
                    tier_id: "T7".into()
                }
            )
            .await
            .is_err()
    );
}

#[tokio::test]
async fn temporary_increase_is_signed_until_its_day() {
    let w = World::sqlite("2026-11-28").await;
    let c = w.customer("Peak").await;
    let (id, token) = w.license(&c, 50, "2027-06-30").await;
    assert!(
        w.portal
            .increase("support:s", &id, 80, day("2026-11-27"))
            .await
            .is_err()
    );
    w.portal
        .increase("support:s", &id, 80, day("2026-12-05"))
        .await
        .unwrap();
    let t = w.terms(&token).await;
    assert_eq!(t.channels, 50);
    assert_eq!(
        t.grants,
        vec![license::Grant::Increase {
            channels: 80,
            start: day("2026-11-28"),
            end: day("2026-12-05")
        }]
    );
    w.set_day("2026-12-06");
    assert!(w.terms(&token).await.grants.is_empty());
}
