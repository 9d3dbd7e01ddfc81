//! Where legs come in: the embedded sensor watching the capture directory ([`watcher`]), remote
//! sensors posting batches and heartbeats ([`remote`]), and the one database writer both feed
//! ([`writer`]).

pub mod remote;
pub mod watcher;
pub mod writer;

use calls::Leg;

use self::watcher::DoneKey;
use crate::state::LiveSnapshot;

/// What the sensor thread tells the writer.
pub enum IngestMsg {
    Legs(Vec<Leg>),
    FileDone {
        key: DoneKey,
        live: LiveSnapshot,
        /// The live legs behind `live`, for the union with remote sensors' (see `ingest`).
        live_legs: Vec<::sensor::uplink::LiveLeg>,
        failed: bool,
    },
    /// A remote sensor's batch; `ack` is answered once it is committed.
    Remote {
        legs: Vec<Leg>,
        /// One per leg, in stored form (a version 2 batch); empty when the messages are in
        /// the legs.
        messages: Vec<Option<msgblob::Encoded>>,
        ack: tokio::sync::oneshot::Sender<Result<store::InsertReport, String>>,
    },
}
