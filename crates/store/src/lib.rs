//! CDR leg storage.
