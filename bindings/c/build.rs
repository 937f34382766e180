//! Gives libseawall.so its SONAME (libseawall.so.<major>), so that programs linked against
//! it record the ABI they need rather than the development symlink.

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libseawall.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
