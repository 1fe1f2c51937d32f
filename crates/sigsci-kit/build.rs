//! Links the CLI with packed relative relocations (DT_RELR) where the linker and the C library
//! support them. The binary has ~90k relative relocations: as 24-byte RELA entries the loader
//! reads 2 MB of them at every start, and they stay in the process's memory (2.5 MiB of a feed
//! export's peak RSS); packed, they take ~23 KB. The executable stays position-independent.
//!
//! Only for native builds: the linked program must run where it was linked, and a C library older
//! than 2.36 (e.g. the Lambda runtime's) cannot load it. The Lambda binaries do not get it.

use std::env;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

const OPTION: &str = "-Wl,-z,pack-relative-relocs";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let linux_gnu = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    let native = env::var("TARGET").ok() == env::var("HOST").ok();
    let Some(out_dir) = env::var_os("OUT_DIR") else {
        return;
    };
    if linux_gnu && native && links_and_runs(Path::new(&out_dir)) {
        println!("cargo:rustc-link-arg-bins={OPTION}");
    }
}

/// Links a small position-independent program that needs a relative relocation with the option
/// (a linker that does not know it warns, and warnings fail here) and runs it (a C library that
/// cannot load it fails).
fn links_and_runs(dir: &Path) -> bool {
    let source = dir.join("relr_probe.c");
    let program = dir.join("relr_probe");
    let text = "static const char *word = \"relr\";\nint main(void) { return word[0] != 'r'; }\n";
    if fs::write(&source, text).is_err() {
        return false;
    }
    let compiler = env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let linked = Command::new(compiler)
        .args(["-fPIE", "-pie", OPTION, "-Wl,--fatal-warnings", "-o"])
        .arg(&program)
        .arg(&source)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    linked
        && Command::new(&program)
            .status()
            .is_ok_and(|status| status.success())
}
