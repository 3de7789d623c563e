//! RocksDB is linked as a prebuilt static library (`ROCKSDB_LIB_DIR`, see
//! scripts/fuzz.sh); its C++ runtime is then not linked by librocksdb-sys, so link it
//! here rather than relying on RUSTFLAGS, which cargo-fuzz rewrites.
fn main() {
    println!("cargo:rustc-link-lib=stdc++");
    println!("cargo:rerun-if-changed=build.rs");
}
