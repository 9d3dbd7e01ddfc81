//! The pages on a real portal: login, CSRF on every form, a customer's own services, orders and
//! key download, isolation between customers, and the support console's actions all in the
//! audit log.

mod common;

use common::*;
use portal::Role;

/// The value of the first `name="csrf" value="…"` in a page.
fn csrf(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    html[start..start + 64].to_string()
}

struct Browser {
    http: reqwest::Client,
    base: String,
}

impl Browser {
    async fn login(w: &World, user: &str, password: &str) -> (Browser, reqwest::StatusCode) {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .unwrap();
        let page = http.get(format!("{}/login", w.base)).send().await.unwrap();
        let token = csrf(&page.text().await.unwrap());
        let r = http
            .post(format!("{}/login", w.base))
            .form(&[
                ("csrf", token.as_str()),
                ("user", user),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        let status = r.status();
        (
            Browser {
                http,
                base: w.base.clone(),
            },
            status,
        )
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Posts a form with the CSRF token of the page at `from`.
    async fn post(&self, from: &str, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let (_, page) = self.get(from).await;
        let token = csrf(&page);
        let mut form: Vec<(&str, &str)> = vec![("csrf", token.as_str())];
        form.extend_from_slice(fields);
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Uploads an offline request file for `token` on `hwid` through the form on the page at
    /// `from` (the license page the request is posted to).
    async fn upload_offline(&self, from: &str, token: &str, hwid: &str) -> (u16, String) {
        let (_, page) = self.get(from).await;
        let request = format!(
            r#"{{"sipmeter_license_request":1,"token":"{token}","hwid":"{hwid}","install_id":"x","created_at":"2026-11-28T00:00:00Z"}}"#
        );
        let form = reqwest::multipart::Form::new()
            .text("csrf", csrf(&page))
            .part(
                "request",
                reqwest::multipart::Part::text(request).file_name("req.json"),
            );
        let r = self
            .http
            .post(format!("{}{from}/offline", self.base))
            .multipart(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// A console form: its action path, its fields, and the audit action it must leave.
type Step<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);

async fn two_customers(w: &World) -> ((String, String, String), (String, String, String)) {
    let a = w.customer("Alpha").await;
    let b = w.customer("Beta").await;
    w.portal
        .add_user("test", "alice", "alice-pass", Role::Customer, Some(&a))
        .await
        .unwrap();
    w.portal
        .add_user("test", "bob", "bob-pass-1", Role::Customer, Some(&b))
        .await
        .unwrap();
    let (la, ta) = w.license(&a, 50, "2027-06-30").await;
    let (lb, tb) = w.license(&b, 70, "2027-03-31").await;
    ((a, la, ta), (b, lb, tb))
}

#[tokio::test]
async fn customers_see_only_their_own_licenses() {
    let w = World::sqlite("2026-11-28").await;
    let ((_, la, ta), (_, lb, tb)) = two_customers(&w).await;
    let (_, status) = Browser::login(&w, "alice", "wrong-password").await;
    assert_eq!(status, 401);
    let (alice, status) = Browser::login(&w, "alice", "alice-pass").await;
    assert_eq!(status, 200);

    let (status, page) = alice.get("/services").await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&la) && page.contains(&ta),
        "own license and token listed"
    );
    assert!(
        page.contains("2027-06-30") && page.contains("2027-07-20"),
        "formal and grace end"
    );
    assert!(
        !page.contains(&lb) && !page.contains(&tb),
        "no trace of Beta's license"
    );

    // every way to reach Beta's license answers 404
    assert_eq!(alice.get(&format!("/services/{lb}")).await.0, 404);
    let own = format!("/services/{la}");
    for (path, fields) in [
        (format!("/services/{lb}/key"), vec![("hwid", HWID_A)]),
        (format!("/services/{lb}/upgrade"), vec![("tier", "T100")]),
        (format!("/services/{lb}/renew"), vec![("months", "12")]),
    ] {
        assert_eq!(alice.post(&own, &path, &fields).await.0, 404, "{path}");
    }
    // an offline request file with Beta's token, uploaded on Alice's own page
    assert_eq!(alice.upload_offline(&own, &tb, HWID_A).await.0, 404);
    assert!(
        w.portal
            .orders(Some(&lb), None)
            .await
            .unwrap()
            .iter()
            .all(|o| o.kind == portal::OrderKind::New)
    );
    // Beta's license was never bound by Alice's attempts
    assert_eq!(
        w.portal.license(&lb).await.unwrap().binding,
        portal::BindingState::Hwid(None)
    );
    // the support console is not for customers
    assert_eq!(alice.get("/support").await.0, 404);
    assert_eq!(alice.get(&format!("/support/licenses/{la}")).await.0, 404);
    assert_eq!(alice.get("/support/audit").await.0, 404);
}

#[tokio::test]
async fn customer_upgrade_orders_and_key_download() {
    let w = World::sqlite("2026-11-28").await;
    let ((_, la, ta), _) = two_customers(&w).await;
    let (alice, _) = Browser::login(&w, "alice", "alice-pass").await;
    let own = format!("/services/{la}");
    let (_, page) = alice.get(&own).await;
    assert!(
        page.contains("UPGRADE") && page.contains("T200"),
        "tiers offered"
    );

    // a form without the CSRF token is refused and changes nothing
    let r = alice
        .http
        .post(format!("{}{own}/upgrade", w.base))
        .form(&[("tier", "T200")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(w.portal.orders(Some(&la), None).await.unwrap().len(), 1);

    let (status, page) = alice
        .post(&own, &format!("{own}/upgrade"), &[("tier", "T200")])
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("pending until paid"), "{page}");
    let (_, orders) = alice.get("/orders").await;
    assert!(
        orders.contains("upgrade") && orders.contains("200 channels") && orders.contains("pending")
    );
    // still 50 until support marks it paid
    assert_eq!(w.terms(&ta).await.channels, 50);

    // key download for a hardware id: a file that verifies there
    let (status, file) = alice
        .post(&own, &format!("{own}/key"), &[("hwid", HWID_B)])
        .await;
    assert_eq!(status, 200);
    let t = w.verify(&file, HWID_B, None).unwrap().terms;
    assert_eq!(t.license_id, la);
    // offline: upload a request file, get the response file
    let (status, text) = alice.upload_offline(&own, &ta, HWID_B).await;
    assert_eq!(status, 200);
    assert_eq!(w.verify(&text, HWID_B, None).unwrap().terms.license_id, la);
}

#[tokio::test]
async fn support_console_actions_are_all_audited() {
    let w = World::sqlite("2026-11-28").await;
    let ((_, la, _), (_, lb, _)) = two_customers(&w).await;
    assert_eq!(
        w.portal
            .ensure_support_user(Some("support-pass"))
            .await
            .unwrap(),
        None
    );
    assert!(
        w.portal
            .ensure_support_user(Some("other"))
            .await
            .unwrap()
            .is_none(),
        "only once"
    );
    let (sup, status) = Browser::login(&w, "support", "support-pass").await;
    assert_eq!(status, 200);
    let (_, home) = sup.get("/support").await;
    assert!(home.contains(&la) && home.contains(&lb));
    let page = format!("/support/licenses/{la}");
    let act = |a: &str| format!("{page}/{a}");
    let steps: Vec<Step<'_>> = vec![
        (
            act("increase"),
            vec![("channels", "80"), ("until", "2026-12-31")],
            "increase",
        ),
        (
            act("allow-concurrent"),
            vec![("systems", "2"), ("until", "2026-12-20")],
            "concurrent",
        ),
        (act("bind"), vec![("domain", "pbx.alpha.example")], "bind"),
        (act("emergency-trial"), vec![], "emergency_trial"),
        (act("renew"), vec![("months", "12")], "place_order"),
        (act("cancel"), vec![], "cancel"),
    ];
    for (path, fields, _) in &steps {
        let (status, body) = sup.post(&page, path, fields).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    // a bad date names the field and changes nothing
    let (status, body) = sup
        .post(
            &page,
            &act("increase"),
            &[("channels", "80"), ("until", "soon")],
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("until"), "{body}");
    // mark the renewal paid from the orders page
    let order = w
        .portal
        .orders(Some(&la), None)
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.kind == portal::OrderKind::Renewal)
        .unwrap();
    let (status, _) = sup
        .post(
            "/support/orders",
            &format!("/support/orders/{}/paid", order.id),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let row = w.portal.license(&la).await.unwrap();
    assert_eq!(row.formal_end, day("2028-06-30"));
    assert_eq!(
        row.binding,
        portal::BindingState::Domain("pbx.alpha.example".into())
    );

    let audit = w.portal.audit_log(None, 1000).await.unwrap();
    for (_, _, action) in &steps {
        assert!(
            audit
                .iter()
                .any(|a| a.action == *action && a.who == "support:support"),
            "{action} missing from the audit log"
        );
    }
    assert!(
        audit
            .iter()
            .any(|a| a.action == "order_paid" && a.who == "support:support")
    );
    assert!(!audit.iter().any(|a| a.details.contains("soon")));
    let (_, audit_page) = sup.get("/support/audit").await;
    for action in [
        "increase",
        "concurrent",
        "bind",
        "emergency_trial",
        "cancel",
        "order_paid",
    ] {
        assert!(
            audit_page.contains(action),
            "{action} not on the audit page"
        );
    }
    // the license page shows check-ins and the concurrent-use flag
    for boot in ["b1", "b2"] {
        w.checkin(&lb, "inst", boot).await;
    }
    w.clock.advance(5 * MIN);
    w.checkin(&lb, "inst", "b1").await;
    let (_, lpage) = sup.get(&format!("/support/licenses/{lb}")).await;
    assert!(
        lpage.contains("license used concurrently by 2 systems"),
        "{lpage}"
    );
    assert!(lpage.contains("b1") && lpage.contains("b2"));
}

#[tokio::test]
async fn repeated_failed_logins_lock_the_user_name_out() {
    let w = World::sqlite("2026-11-28").await;
    let _ = two_customers(&w).await;
    for _ in 0..5 {
        assert_eq!(Browser::login(&w, "alice", "guess-guess").await.1, 401);
    }
    // the right password is refused too while the name is throttled; others are not affected
    assert_eq!(Browser::login(&w, "alice", "alice-pass").await.1, 429);
    assert_eq!(Browser::login(&w, "bob", "bob-pass-1").await.1, 200);
}

#[tokio::test]
async fn support_adds_a_customer_with_login_and_a_license_then_upgrades_it() {
    let w = World::sqlite("2026-11-28").await;
    w.portal
        .ensure_support_user(Some("support-pass"))
        .await
        .unwrap();
    let (sup, _) = Browser::login(&w, "support", "support-pass").await;
    let (status, page) = sup
        .post(
            "/support",
            "/support/customers",
            &[
                ("name", "Gamma"),
                ("login", "gina"),
                ("password", "gina-pass"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let gamma = w
        .portal
        .customers()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name == "Gamma")
        .unwrap();
    let (status, page) = sup
        .post(
            "/support",
            "/support/licenses",
            &[
                ("customer", gamma.id.as_str()),
                ("channels", "25"),
                ("formal_end", "2027-09-30"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let lic = w
        .portal
        .licenses(Some(&gamma.id))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert!(page.contains(&lic.token), "the new token is shown");
    let lpage = format!("/support/licenses/{}", lic.id);
    let (status, _) = sup
        .post(&lpage, &format!("{lpage}/upgrade"), &[("tier", "T50")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(w.terms(&lic.token).await.channels, 25, "pending");
    let order = w
        .portal
        .orders(Some(&lic.id), None)
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.kind == portal::OrderKind::Upgrade)
        .unwrap();
    let (status, page) = sup
        .post(
            "/support/orders",
            &format!("/support/orders/{}/paid", order.id),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("is completed"), "{page}");
    assert_eq!(w.terms(&lic.token).await.channels, 50);
    // the new customer logs in and sees the upgraded license
    let (gina, status) = Browser::login(&w, "gina", "gina-pass").await;
    assert_eq!(status, 200);
    let (_, services) = gina.get("/services").await;
    assert!(
        services.contains(&lic.id) && services.contains("<td>50</td>"),
        "{services}"
    );
    let audit = w.portal.audit_log(None, 100).await.unwrap();
    for action in [
        "add_customer",
        "add_user",
        "add_license",
        "place_order",
        "order_paid",
    ] {
        assert!(
            audit
                .iter()
                .any(|a| a.action == action && a.who == "support:support"),
            "{action}"
        );
    }
}
