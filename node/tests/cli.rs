//! The `fapiao` binary's key and genesis commands, run as a user would.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn fapiao(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fapiao")).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = fapiao(args);
    assert!(
        o.status.success(),
        "fapiao {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let o = fapiao(args);
    assert!(!o.status.success(), "fapiao {args:?} should fail");
    String::from_utf8(o.stderr).unwrap()
}

fn p(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_string()
}

#[test]
fn keygen_and_genesis_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for k in ["m1.key", "m2.key", "op.key"] {
        ok(&["keygen", "--out", &p(d, k)]);
        let mode = std::fs::metadata(d.join(k)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{k}");
    }
    assert!(fails(&["keygen", "--out", &p(d, "m1.key")]).contains("--force"));

    let g = p(d, "genesis.toml");
    ok(&[
        "genesis",
        "init",
        "--out",
        &g,
        "--network-name",
        "test-net",
        "--code",
        "110001",
        "--name",
        "Tea House",
        "--key",
        &p(d, "m1.key"),
        "--address",
        "/ip4/127.0.0.1/tcp/7001",
    ]);
    ok(&[
        "genesis",
        "add-member",
        "--genesis",
        &g,
        "--code",
        "110002",
        "--name",
        "Noodles",
        "--key",
        &p(d, "m2.key"),
    ]);
    let out = ok(&[
        "genesis",
        "add-member",
        "--genesis",
        &g,
        "--code",
        "900001",
        "--name",
        "Operator",
        "--roles",
        "operator",
        "--key",
        &p(d, "op.key"),
    ]);
    // The operator signs events but runs no node: the quorum is of the 2 witnesses.
    assert!(out.contains("3 members, 2 merchants, 2 witnesses; quorum 2"), "{out}");
    let shown = ok(&["genesis", "show", &g]);
    assert!(
        shown.contains("110001") && shown.contains("operator") && shown.contains("network id"),
        "{shown}"
    );

    // Errors are clear and leave the file unchanged.
    let before = std::fs::read_to_string(&g).unwrap();
    assert!(fails(&[
        "genesis",
        "add-member",
        "--genesis",
        &g,
        "--code",
        "110001",
        "--name",
        "Dup",
        "--public-key",
        "00"
    ])
    .contains("public-key"));
    assert!(fails(&[
        "genesis",
        "add-member",
        "--genesis",
        &g,
        "--code",
        "12",
        "--name",
        "X",
        "--key",
        &p(d, "m1.key")
    ])
    .contains("6 digits"));
    assert!(fails(&[
        "genesis",
        "add-member",
        "--genesis",
        &g,
        "--code",
        "110003",
        "--name",
        "X",
        "--roles",
        "witness,king",
        "--key",
        &p(d, "m1.key")
    ])
    .contains("king"));
    assert!(fails(&[
        "genesis",
        "add-member",
        "--genesis",
        &g,
        "--code",
        "110003",
        "--name",
        "Same key",
        "--key",
        &p(d, "m1.key")
    ])
    .contains("share a key"));
    assert_eq!(std::fs::read_to_string(&g).unwrap(), before);

    // A hand edit with an unknown field is refused with the field named.
    std::fs::write(&g, before.replace("network_name", "network_nam")).unwrap();
    assert!(fails(&["genesis", "show", &g]).contains("network_nam"));
}
