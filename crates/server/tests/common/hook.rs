//! A webhook receiver on 127.0.0.1 shared by the alert tests (`alerts.rs` over plain HTTP,
//! `alerts_tls.rs` over https). Kept apart from `common/mod.rs` because that module is also
//! compiled into the sipmeter crate's tests, which have no axum.

use std::sync::{Arc, Mutex};

use server::tls::TlsFiles;

/// Every JSON document POSTed to `/hook`.
#[derive(Clone, Default)]
pub struct Hook(Arc<Mutex<Vec<serde_json::Value>>>);

impl Hook {
    /// Starts a receiver (https with `tls`, else plain HTTP); the receiver and its URL.
    pub async fn start(tls: Option<&TlsFiles>) -> (Hook, String) {
        let hook = Hook::default();
        let got = hook.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
                let got = got.clone();
                async move {
                    got.0.lock().unwrap().push(v);
                    "ok"
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (stop, signal) = tokio::sync::oneshot::channel::<()>();
        server::tls::serve(l, tls, app, signal).unwrap();
        // The receiver lives as long as the test process.
        std::mem::forget(stop);
        let scheme = if tls.is_some() { "https" } else { "http" };
        (hook, format!("{scheme}://{addr}/hook"))
    }

    pub fn docs(&self) -> Vec<serde_json::Value> {
        self.0.lock().unwrap().clone()
    }
}
