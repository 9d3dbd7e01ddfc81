//! The Reports page and its CSV downloads ([`page`]), and the daily report's figures
//! ([`daily`]: calls, answered, ASR, ACD, failures by code, peak).

pub mod daily;
pub mod page;
