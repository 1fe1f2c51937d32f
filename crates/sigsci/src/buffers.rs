//! A process-wide cache of page-sized body buffers. A feed page's body is the client's largest
//! allocation (~1.3 MB) and lives until its records are written, on another thread; freed, the
//! allocator returns its pages to the system and the next page faults them in again (a few per
//! cent of an export's CPU). A page's text hands its buffer back here instead, to be read into
//! again.

use std::sync::Mutex;

/// Bodies smaller than this are allocated as usual: they would only drain the cache.
pub(crate) const POOLED_BODY: usize = 64 * 1024;

/// Idle buffers kept; more are freed. A site's export holds up to six pages at once (two
/// windows, each with a page parsed, one fetched ahead and one queued), so six let every page be
/// read into a buffer read into before. With one kept, the rest went back to the allocator, whose
/// freed-but-unpurged extents at a given moment depend on timing: a long export met a worse
/// moment than a short one (peak RSS up to 1.1× at 2M records against 100k, 1.03× with six).
const KEPT: usize = 6;

static IDLE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer with room for `capacity` bytes: an idle one if it is large enough, else a new
/// one with a sixteenth to spare, so that it fits the next pages too (their sizes vary by a few
/// per cent) and is not grown, which would hold the old and the new allocation at once.
pub(crate) fn take(capacity: usize) -> Vec<u8> {
    let idle = match IDLE.lock() {
        Ok(mut idle) => idle.pop(),
        Err(_) => None,
    };
    reuse_or_new(idle, capacity)
}

/// `idle` if it has room for `capacity` bytes; otherwise it is dropped and a new one made.
fn reuse_or_new(idle: Option<Vec<u8>>, capacity: usize) -> Vec<u8> {
    match idle {
        Some(buffer) if buffer.capacity() >= capacity => buffer,
        _ => Vec::with_capacity(capacity + capacity / 16),
    }
}

/// Keeps `buffer` for a later body if it is page-sized and the cache has room.
pub(crate) fn give_back(mut buffer: Vec<u8>) {
    if buffer.capacity() < POOLED_BODY {
        return;
    }
    buffer.clear();
    if let Ok(mut idle) = IDLE.lock()
        && idle.len() < KEPT
    {
        idle.push(buffer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Other tests of this crate share the cache, so only what holds whatever they do is asserted.
    #[test]
    fn taken_buffers_are_empty_and_at_most_a_few_page_sized_ones_are_kept() {
        let mut used = take(POOLED_BODY);
        used.extend_from_slice(b"a page");
        give_back(used);
        for _ in 0..KEPT + 2 {
            give_back(Vec::with_capacity(POOLED_BODY));
        }
        give_back(Vec::with_capacity(16));
        let idle = IDLE.lock().map(|idle| idle.len()).unwrap_or(usize::MAX);
        assert!(idle <= KEPT, "{idle} idle");
        let small = IDLE
            .lock()
            .map(|idle| {
                idle.iter()
                    .any(|b| b.capacity() < POOLED_BODY || !b.is_empty())
            })
            .unwrap_or(true);
        assert!(!small, "only empty page-sized buffers wait");
        let again = take(2 * POOLED_BODY);
        assert!(again.is_empty() && again.capacity() >= 2 * POOLED_BODY);
    }

    #[test]
    fn an_idle_buffer_is_reused_when_the_body_fits_and_replaced_when_it_does_not() {
        let large = Vec::with_capacity(2 * POOLED_BODY);
        let pointer = large.as_ptr();
        let reused = reuse_or_new(Some(large), POOLED_BODY);
        assert_eq!(
            reused.as_ptr(),
            pointer,
            "a buffer with room is the same allocation"
        );

        // Too small: not grown (old and new would be held at once) but a new one, a sixteenth to spare.
        let small = Vec::with_capacity(POOLED_BODY);
        let replaced = reuse_or_new(Some(small), 4 * POOLED_BODY);
        assert!(replaced.capacity() >= 4 * POOLED_BODY + POOLED_BODY / 4);
        let fresh = reuse_or_new(None, 16 * POOLED_BODY);
        assert!(fresh.capacity() >= 17 * POOLED_BODY);
    }
}
