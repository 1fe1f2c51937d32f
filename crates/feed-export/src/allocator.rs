//! The allocator of the processes that stream the feed (the CLI, the feed-export Lambda, the bench).
//!
//! With glibc's malloc the peak RSS of an export grew with the hour: page bodies, compressed
//! chunks and id sets of varying sizes are allocated on one thread and freed on another, and the
//! freed space fragments the heaps (51 MiB for 100k records, 80 MiB for 2M, although the live heap
//! stayed under 29 MiB; arena and mmap-threshold tuning only moved both figures). jemalloc with
//! one arena, freed pages returned after 200 ms and no "muzzy" stage keeps it flat in the hour's
//! size, for a little system time.

/// Declare it in each binary: `#[global_allocator] static GLOBAL: StreamingAllocator = StreamingAllocator;`.
pub use tikv_jemallocator::Jemalloc as StreamingAllocator;

/// jemalloc reads its options from this symbol at start-up (the crate prefixes its symbols
/// with `_rjem_`). One arena: the exporter's threads hand buffers to each other, so per-thread
/// arenas only hold freed memory apart. Thread caches only for objects up to 1 KiB: the ~8
/// threads each cached up to 32 KiB objects (pages, batches, column buffers freed on another
/// thread), ~7 MiB of a 2M-record OCSF export's peak, for no measurable CPU.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"narenas:1,tcache_max:1024,dirty_decay_ms:200,muzzy_decay_ms:0\0";
