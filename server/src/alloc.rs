//! Allocator tuning for the binaries (`mictlanx-server`, `mictlanx`).
//!
//! glibc's malloc gives each thread that meets contention its own arena, up to eight per
//! core, and an arena keeps freed memory for reuse. A server that moves chunks of up to a few
//! MB through tokio workers and blocking-pool threads then holds far more memory than it
//! uses: with 1 MB chunks the embedded bench peaked at 60 MB with the default arenas and at
//! 49 MB with two, for the same throughput (`MALLOC_ARENA_MAX=2 mictlanx bench put-large
//! --chunk-size 1MB`). Libraries do not get to choose the allocator of the program that
//! embeds them, so only the binaries call this.

/// Caps glibc's malloc arenas at two, unless `MALLOC_ARENA_MAX` says otherwise. Call it first
/// thing in `main`, before threads start. Does nothing on other C libraries.
///
/// ```
/// mictlanx_server::alloc::limit_malloc_arenas();
/// ```
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX with a positive
        // value is documented for any time, and we call it before other threads exist.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
