//! Explain (todo)
