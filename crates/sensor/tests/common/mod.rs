#![allow(dead_code)]
pub mod wrap;
