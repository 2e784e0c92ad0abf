//! Build script of the benchmark's binaries: linked as the `sluice` binary
//! is (packed relative relocations where they start here), so the serve
//! process's memory is the product's.

include!("../../build-support/relr.rs");

fn main() {
    println!("cargo:rerun-if-changed=../../build-support/relr.rs");
    link_binaries_with_relr();
}
