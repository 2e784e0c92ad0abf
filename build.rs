//! Build script of the `sluice` binary: links it with packed relative
//! relocations where the result starts on this machine (see
//! `build-support/relr.rs`).

include!("build-support/relr.rs");

fn main() {
    println!("cargo:rerun-if-changed=build-support/relr.rs");
    link_binaries_with_relr();
}
