//! Exact per-window de-duplication of record ids in little memory.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// Ids the window has already written. API ids are short lower-case hex (24 digits), which pack
/// losslessly into a `u128` (16 bytes instead of a heap string); anything else is kept as text.
#[derive(Default)]
pub struct IdSet {
    packed: HashSet<u128, BuildHasherDefault<PackedHasher>>,
    other: HashSet<Box<str>>,
}

/// One folded multiply per packed id (as foldhash does) instead of SipHash, which cost more than
/// the rest of the de-duplication: the ids are the API's, not chosen by whoever sends requests, so
/// there is no flood to resist, and their digits are already well spread.
#[derive(Default)]
struct PackedHasher(u64);

impl Hasher for PackedHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(16) {
            let mut word = [0; 16];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u128(u128::from_le_bytes(word));
        }
    }

    fn write_u128(&mut self, value: u128) {
        const SEED_LOW: u64 = 0x243f_6a88_85a3_08d3;
        const SEED_HIGH: u64 = 0x1319_8a2e_0370_7344;
        let low = (value as u64) ^ self.0 ^ SEED_LOW;
        let high = ((value >> 64) as u64) ^ SEED_HIGH;
        let product = u128::from(low) * u128::from(high);
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Up to 30 hex digits plus the length (so "0a" and "a" stay distinct).
fn pack(id: &str) -> Option<u128> {
    if id.is_empty() || id.len() > 30 {
        return None;
    }
    let mut value: u128 = 0;
    for byte in id.bytes() {
        let digit = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            _ => return None,
        };
        value = (value << 4) | u128::from(digit);
    }
    Some(value | ((id.len() as u128) << 120))
}

impl IdSet {
    /// True if `id` was not seen before.
    pub fn insert(&mut self, id: &str) -> bool {
        match pack(id) {
            Some(key) => self.packed.insert(key),
            None => self.other.insert(id.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinguishes_every_id_and_catches_repeats() {
        let mut ids = IdSet::default();
        for id in [
            "665a1f00aa00bb00cc00dd00",
            "a",
            "0a",
            "00a",
            "A",
            "not-hex",
            "665a1f00aa00bb00cc00dd01",
        ] {
            assert!(ids.insert(id), "{id} is new");
        }
        for id in ["665a1f00aa00bb00cc00dd00", "0a", "A", "not-hex"] {
            assert!(!ids.insert(id), "{id} is a repeat");
        }
        let long = "f".repeat(31);
        assert!(ids.insert(&long) && !ids.insert(&long));
    }
}
