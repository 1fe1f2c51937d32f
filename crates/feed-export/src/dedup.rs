//! Exact per-window de-duplication of record ids in little memory.

use std::collections::HashSet;

/// Ids the window has already written. API ids are short lower-case hex (24 digits), which pack
/// losslessly into a `u128` (16 bytes instead of a heap string); anything else is kept as text.
#[derive(Default)]
pub struct IdSet {
    packed: HashSet<u128>,
    other: HashSet<Box<str>>,
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
