//! The central server: web GUI, JSON API, login, license enforcement, alerts, reports.
//!
//! Module map (one job each):
//! - `chart`: server-side SVG charts (Concurrent Calls Stats, dashboard), pure rendering.
//! - `daily`: the daily report figures (calls, answered, ASR, ACD, failures by code, peak).

pub mod chart;
pub mod daily;
