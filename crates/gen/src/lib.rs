//! The capture generator as a library, so tests elsewhere in the workspace can make a capture
//! and its truth in-process (the `sipmeter-gen` binary is a thin wrapper around it).

pub mod args;
pub mod pcap;
mod rng;
pub mod sim;
pub mod time;
