//! The license as this server lives with it: the facts `license::status` needs, gathered from
//! the machine and the data directory ([`env`], shared with `sipmeter license`), and the vendor
//! portal ([`portal_client`]: Get/Update License, the refresh, the check-ins).
//!
//! The rules themselves are pure and live in the `license` crate; nothing here decides what is
//! trusted.

pub mod env;
pub mod portal_client;

/// The license state as one lower-case word (JSON `state`, the footer's CSS class, metrics).
pub fn state_name(s: ::license::State) -> &'static str {
    match s {
        ::license::State::Ok => "ok",
        ::license::State::Grace => "grace",
        ::license::State::Lockdown => "lockdown",
        ::license::State::Locked => "locked",
    }
}
