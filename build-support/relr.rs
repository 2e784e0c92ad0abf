// Included by the build scripts of the binaries (`build.rs`,
// `bench/syslog/build.rs`): one implementation for both.
//
// Packed relative relocations (DT_RELR, `-z pack-relative-relocs`): the
// loader applies the executable's ~68,000 relative relocations from a 26 KB
// table instead of a 1.6 MB one, which it would otherwise read (and keep
// resident) at every start: about 1.5 MB less resident memory for every
// running Sluice, at no cost in speed or in address-space randomisation.
//
// A binary linked so needs glibc 2.36 or later to start (the linker records
// the GLIBC_ABI_DT_RELR version; an older loader refuses it). So the flag is
// used only where the result is known to start: the build script links a
// tiny program with it, with the same compiler, linker and flags, and runs
// it. Cross builds (target other than host), older linkers and older glibc
// get an ordinary link.

/// The linker argument, as the `cc`-style driver rustc links through takes it.
const RELR_LINK_ARG: &str = "-Wl,-z,pack-relative-relocs";

/// Asks cargo to link this package's binaries with packed relative
/// relocations when a probe linked the same way starts on this machine.
fn link_binaries_with_relr() {
    println!("cargo:rerun-if-env-changed=SLUICE_NO_RELR");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    let wanted = std::env::var_os("SLUICE_NO_RELR").is_none()
        && target == host
        && target.contains("-linux-gnu");
    if wanted && relr_probe_starts() {
        println!("cargo:rustc-link-arg-bins={RELR_LINK_ARG}");
    }
}

/// Links `fn main() {}` with the flag, as cargo would link the binaries,
/// and runs it. Any failure (no compiler, a linker that refuses the flag, a
/// loader that refuses the result) means "no".
fn relr_probe_starts() -> bool {
    let Some(out) = std::env::var_os("OUT_DIR").map(std::path::PathBuf::from) else {
        return false;
    };
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let source = out.join("relr_probe.rs");
    let binary = out.join("relr_probe");
    if std::fs::write(&source, "fn main() {}\n").is_err() {
        return false;
    }
    let mut compile = std::process::Command::new(rustc);
    // The flags cargo passes to every compilation (RUSTFLAGS, config), so
    // the probe links with the linker the binaries will use.
    if let Ok(flags) = std::env::var("CARGO_ENCODED_RUSTFLAGS") {
        compile.args(flags.split('\u{1f}').filter(|f| !f.is_empty()));
    }
    compile
        .arg("-C")
        .arg(format!("link-arg={RELR_LINK_ARG}"))
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let linked = compile.status().is_ok_and(|s| s.success());
    linked
        && std::process::Command::new(&binary)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}
