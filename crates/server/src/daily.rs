//! The daily report: calls, answered, ASR, ACD, failures by code, peak channels.
