//! Dedup keys: which legs are "the same channel".
//!
//! SPEC §2: the key of a leg is (last 6 digits of the caller, last 6 digits of the called), the
//! digits taken from the user part only. A user part without any digit keys on the whole user
//! part, lower-cased.
//!
//! Precise rules (each tested below):
//! - Only ASCII `0`–`9` are digits. Everything else (`+`, `-`, spaces, dots, letters, `;`
//!   parameters, non-ASCII) is skipped, so `+44 20 7946-0123` and `00442079460123` agree.
//! - "Last 6 digits" are the last 6 digit characters in order; with fewer than 6 digits all of
//!   them are used, and the count matters: `0123` and `123` are different parts (leading zeros
//!   are digits like any other).
//! - A user part with no digit at all uses the whole user part lower-cased (Unicode
//!   lower-casing), e.g. `Alice` and `alice` agree, `anonymous` is one part.
//! - An **empty** user part follows the same rule literally: it has no digits, so its part is
//!   the empty text. All legs with an empty caller and the same called part therefore merge. We
//!   chose this over "never merges" because the rule as written says so, and because an empty
//!   user part usually means the same thing on every sensor (a call to or from a bare host); a
//!   genuinely different call still differs in the other side's number.
//!
//! Cost: a leg is keyed in one pass over its two user parts with no allocation when the parts
//! contain digits (the usual case); the six digits are packed into an integer. Only text parts
//! are interned (one hash lookup, one allocation the first time a text is seen).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// One side of a dedup key, packed in 32 bits.
///
/// Bit 31 clear: digits; bits 20..=22 hold how many digits (0..=6), bits 0..=19 their value
/// (< 10^6 < 2^20). A length of 0 is the empty user part. Bit 31 set: interned text, bits
/// 0..=30 are the index of the text in the [`Keyer`] that made it. Text codes are therefore only
/// comparable between keys made by the same `Keyer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartCode(u32);

const TEXT_BIT: u32 = 1 << 31;
const LEN_SHIFT: u32 = 20;

impl PartCode {
    /// The raw packed value (for persistence or hashing by callers).
    pub fn raw(self) -> u32 {
        self.0
    }

    fn is_text(self) -> bool {
        self.0 & TEXT_BIT != 0
    }
}

/// The dedup key of a leg: caller part and called part, 64 bits. Comparable only between keys
/// produced by the same [`Keyer`] (text parts are interned there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DedupKey {
    pub caller: PartCode,
    pub called: PartCode,
}

impl DedupKey {
    /// Both parts in one integer: caller in the high 32 bits.
    pub fn as_u64(self) -> u64 {
        ((self.caller.0 as u64) << 32) | self.called.0 as u64
    }

    /// The inverse of [`DedupKey::as_u64`] (for tests and for callers that number keys
    /// themselves; any `u64` is a valid key, distinct values being distinct keys).
    pub fn from_u64(v: u64) -> DedupKey {
        DedupKey {
            caller: PartCode((v >> 32) as u32),
            called: PartCode(v as u32),
        }
    }
}

/// Scans a user part: `Some((count, value))` of its last (up to) 6 digits, `None` when it has no
/// digit at all. Non-ASCII bytes in UTF-8 are never ASCII digits, so a byte scan is exact.
fn last_six_digits(user: &str) -> Option<(u32, u32)> {
    // Backwards from the end: stops after six digits, no division (a forward scan with a
    // modulo per digit cost ~0.5 µs a leg on 15-digit numbers).
    const POW10: [u32; 6] = [1, 10, 100, 1_000, 10_000, 100_000];
    let mut count = 0usize;
    let mut value = 0u32;
    for &b in user.as_bytes().iter().rev() {
        let d = b.wrapping_sub(b'0');
        if d < 10 {
            value += d as u32 * POW10[count];
            count += 1;
            if count == 6 {
                break;
            }
        }
    }
    (count > 0).then_some((count as u32, value))
}

/// The dedup part of a user part as text, for display and for callers that do not need the
/// packed form: the last (up to) 6 digits, or the lower-cased user part when it has none.
pub fn dedup_part(user: &str) -> String {
    match last_six_digits(user) {
        Some((count, value)) => format!("{value:0width$}", width = count as usize),
        None => user.to_lowercase(),
    }
}

/// A fast, non-cryptographic hasher for the text table and the sweep's table of active keys.
/// The inputs are our own packed integers (or short texts); hash flooding through crafted user
/// parts could only slow a count down, never change it.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHash;

impl BuildHasher for FastHash {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        // Final avalanche so that the low bits (the bucket index) depend on every input bit.
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(buf));
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

/// Makes dedup keys. Holds the interned texts of non-numeric user parts, so one `Keyer` must be
/// used for all the legs of one computation (keys from different keyers are comparable only
/// when neither side is text).
///
/// Why no global table of keys: with realistic traffic nearly every call has its own
/// (caller, called) pair, so 14 M legs make millions of distinct keys and a table of them is a
/// cache miss per leg (measured: 7 s for 14 M legs). The sweep only needs the keys active at
/// one instant, a few thousand, which stay in cache.
#[derive(Default, Clone)]
pub struct Keyer {
    texts: HashMap<Box<str>, u32, FastHash>,
    text_names: Vec<Box<str>>,
}

impl std::fmt::Debug for Keyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyer")
            .field("texts", &self.text_names.len())
            .finish()
    }
}

impl Keyer {
    pub fn new() -> Keyer {
        Keyer::default()
    }

    /// The packed part of one user part (see the module doc for the rules).
    pub fn part(&mut self, user: &str) -> PartCode {
        if let Some((count, value)) = last_six_digits(user) {
            return PartCode((count << LEN_SHIFT) | value);
        }
        if user.is_empty() {
            return PartCode(0);
        }
        // Avoid the allocation when the text is already lower-case ASCII (the common case:
        // "anonymous", "unknown").
        let lower: std::borrow::Cow<'_, str> = if user
            .bytes()
            .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
        {
            std::borrow::Cow::Borrowed(user)
        } else {
            std::borrow::Cow::Owned(user.to_lowercase())
        };
        if let Some(&i) = self.texts.get(lower.as_ref()) {
            return PartCode(TEXT_BIT | i);
        }
        // More than 2^31 distinct texts cannot be told apart; they share the last index. This
        // needs 2^31 distinct non-numeric user parts in one computation, which no real data has.
        let i = (self.text_names.len() as u32).min(TEXT_BIT - 1);
        let boxed: Box<str> = lower.into();
        self.texts.insert(boxed.clone(), i);
        self.text_names.push(boxed);
        PartCode(TEXT_BIT | i)
    }

    /// The dedup key of (caller user part, called user part).
    pub fn key(&mut self, caller: &str, called: &str) -> DedupKey {
        DedupKey {
            caller: self.part(caller),
            called: self.part(called),
        }
    }

    /// How many distinct non-numeric user parts were interned.
    pub fn texts(&self) -> usize {
        self.text_names.len()
    }

    /// A part as text: the digits with their leading zeros, or the lower-cased text.
    pub fn part_text(&self, p: PartCode) -> String {
        if p.is_text() {
            let i = (p.0 & !TEXT_BIT) as usize;
            self.text_names
                .get(i)
                .map(|s| s.to_string())
                .unwrap_or_default()
        } else {
            let count = (p.0 >> LEN_SHIFT) as usize;
            if count == 0 {
                String::new()
            } else {
                format!("{:0count$}", p.0 & ((1 << LEN_SHIFT) - 1))
            }
        }
    }

    /// A key as "caller part → called part" texts.
    pub fn key_text(&self, k: DedupKey) -> (String, String) {
        (self.part_text(k.caller), self.part_text(k.called))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_six_digits_of_the_user_part() {
        assert_eq!(dedup_part("123456001"), "456001");
        assert_eq!(dedup_part("+44 20 7946-0123"), "460123");
        assert_eq!(dedup_part("00442079460123"), "460123");
        assert_eq!(dedup_part("*67;phone-context=x9"), "679");
        assert_eq!(dedup_part("0123"), "0123");
        assert_eq!(dedup_part("000000"), "000000");
        assert_eq!(dedup_part("Alice"), "alice");
        assert_eq!(dedup_part(""), "");
    }

    #[test]
    fn the_doc_examples() {
        let mut k = Keyer::new();
        // 123456001 -> 123456002: one key (456001, 456002); the sides are not compared with
        // each other, so sharing "456" does not matter.
        let a = k.key("123456001", "123456002");
        assert_eq!(k.key_text(a), ("456001".into(), "456002".into()));
        // 123456789 -> 987654321 is one key too, a different one.
        let b = k.key("123456789", "987654321");
        assert_ne!(a, b);
        // The same call seen again (another sensor, another format) gets the same key.
        assert_eq!(k.key("+1 23456001", "0123456002"), a);
        assert_eq!(DedupKey::from_u64(a.as_u64()), a);
    }

    #[test]
    fn fewer_than_six_digits_keep_their_count() {
        let mut k = Keyer::new();
        assert_ne!(k.part("0123"), k.part("123"));
        assert_eq!(k.part("ext 0123"), k.part("0123"));
        let p = k.part("0123");
        assert_eq!(k.part_text(p), "0123");
        let p = k.part("7");
        assert_eq!(k.part_text(p), "7");
    }

    #[test]
    fn text_users_are_case_insensitive_and_differ_from_digits() {
        let mut k = Keyer::new();
        assert_eq!(k.part("Alice"), k.part("alice"));
        assert_eq!(k.part("ÉMILE"), k.part("émile"));
        assert_ne!(k.part("alice"), k.part("bob"));
        let p = k.part("Alice");
        assert_eq!(k.part_text(p), "alice");
        // A text part never equals a digit part or the empty part.
        assert_ne!(k.part("alice"), k.part(""));
        assert_ne!(k.part("alice"), k.part("0"));
    }

    #[test]
    fn empty_user_part_is_its_own_part() {
        let mut k = Keyer::new();
        assert_eq!(k.part(""), k.part(""));
        assert_ne!(k.part(""), k.part("0"));
        let p = k.part("");
        assert_eq!(k.part_text(p), "");
        // Two legs with an empty caller and the same called number merge.
        assert_eq!(k.key("", "5551234"), k.key("", "+1 555 1234"));
        assert_ne!(k.key("", "5551234"), k.key("", "5551235"));
    }
}
