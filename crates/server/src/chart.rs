//! Server-side SVG charts: pure functions from figures to SVG text (no JavaScript, no CDN).
