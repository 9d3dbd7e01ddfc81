//! A tiny deterministic PRNG (SplitMix64).
//!
//! Written here rather than pulled from `rand` so the byte-for-byte output for a seed can never
//! change under us with a dependency upgrade: benchmark captures and their truth files must be
//! reproducible from `--seed` alone.

/// SplitMix64: 64-bit state, passes BigCrush, one add + three multiply/xor-shift per value.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, 53 bits of precision.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `[lo, hi]` (inclusive). Uses the multiply-shift reduction: the bias
    /// is below 2^-32 for the small ranges we draw from, irrelevant for synthetic traffic.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(lo <= hi);
        let span = hi - lo + 1;
        if span == 0 {
            return self.next_u64();
        }
        lo + ((self.next_u64() as u128 * span as u128) >> 64) as u64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Exponentially distributed with the given mean (inverse transform sampling).
    pub fn exp(&mut self, mean: f64) -> f64 {
        // 1 - f64() is in (0, 1], so ln never sees zero.
        -mean * (1.0 - self.f64()).ln()
    }

    /// `n` random lower-case hex digits appended to `out`.
    pub fn hex_into(&mut self, out: &mut String, n: usize) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut left = n;
        while left > 0 {
            let mut v = self.next_u64();
            for _ in 0..left.min(16) {
                out.push(HEX[(v & 15) as usize] as char);
                v >>= 4;
                left -= 1;
            }
        }
    }

    /// Picks one element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len() as u64 - 1) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_different_seed_different_stream() {
        let a: Vec<u64> = (0..8)
            .map({
                let mut r = Rng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..8)
            .map({
                let mut r = Rng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..8)
            .map({
                let mut r = Rng::new(8);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn range_stays_inside_bounds_and_hits_both_ends() {
        let mut r = Rng::new(1);
        let (mut lo_seen, mut hi_seen) = (false, false);
        for _ in 0..10_000 {
            let v = r.range(3, 6);
            assert!((3..=6).contains(&v));
            lo_seen |= v == 3;
            hi_seen |= v == 6;
        }
        assert!(lo_seen && hi_seen);
    }

    #[test]
    fn exp_has_roughly_the_requested_mean() {
        let mut r = Rng::new(42);
        let n = 100_000;
        let mean = (0..n).map(|_| r.exp(30.0)).sum::<f64>() / n as f64;
        assert!((mean - 30.0).abs() < 0.6, "mean {mean}");
    }

    #[test]
    fn hex_has_requested_length_and_alphabet() {
        let mut r = Rng::new(5);
        let mut s = String::new();
        r.hex_into(&mut s, 37);
        assert_eq!(s.len(), 37);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }
}
