//! Roles in genesis: what a member may hold, who counts towards the quorum, who may read
//! a chain, and the genesis files that are refused, each with a message naming the field.

use fapiao_core::{Genesis, MemberCode, Role, SecretKey};

fn key(n: u8) -> String {
    SecretKey::from_seed(&[n; 32]).public().to_hex()
}

/// A genesis file with one member per `(code, roles, merchant policy)`.
fn file(members: &[(&str, &str, bool)], quorum: Option<u32>) -> String {
    let mut s = String::from(
        "format_version = 5\nnetwork_name = \"roles\"\ncreated_at_ms = 1767225600000\n\
         fee_per_invoice_fen = 10\n\
         classifications = [{ code = \"3070401000000000000\", short_name = \"餐饮服务\" }]\n",
    );
    if let Some(q) = quorum {
        s.push_str(&format!("quorum = {q}\n"));
    }
    for (i, (code, roles, merchant)) in members.iter().enumerate() {
        s.push_str(&format!(
            "\n[[members]]\ncode = \"{code}\"\nname = \"M{i}\"\nroles = {roles}\npublic_key = \"{}\"\n",
            key(i as u8 + 1)
        ));
        if *merchant {
            s.push_str(
                "permitted_invoice_types = [\"normal\"]\nmax_invoice_total_fen = 100000\ninitial_fee_balance_fen = 100\n\
                 tax_rates = [{ rate = \"16%\", until = \"2019-03-31\" }, { rate = \"13%\", from = \"2019-04-01\" }, \
                 { rate = \"exempt\" }]\n",
            );
        }
    }
    s
}

fn code(c: u32) -> MemberCode {
    MemberCode::new(c).unwrap()
}

fn refused(members: &[(&str, &str, bool)], quorum: Option<u32>) -> String {
    match Genesis::from_toml(&file(members, quorum)) {
        Ok(_) => panic!("accepted: {members:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_quorum_counts_witnesses_and_reading_follows_the_roles() {
    let g = Genesis::from_toml(&file(
        &[
            ("110001", r#"["witness", "merchant"]"#, true),
            ("110002", r#"["witness", "merchant"]"#, true),
            ("110003", r#"["witness", "merchant"]"#, true),
            ("110004", r#"["merchant"]"#, true),
            ("800001", r#"["tax_office"]"#, false),
            ("900001", r#"["operator"]"#, false),
        ],
        None,
    ))
    .unwrap();
    assert_eq!(g.config().quorum(), 3, "floor(2*3/3)+1 over the three witnesses");
    assert_eq!(g.config().with_role(Role::Witness).count(), 3);
    let chains: Vec<MemberCode> = g.config().chains().collect();
    assert_eq!(chains, vec![code(110001), code(110002), code(110003), code(110004)]);
    // A chain: its owner, the witnesses and the tax office; not another merchant, not
    // the operator.
    assert!(g.config().may_read(code(110004), code(110004)));
    assert!(g.config().may_read(code(110001), code(110004)));
    assert!(g.config().may_read(code(800001), code(110004)));
    assert!(!g.config().may_read(code(110004), code(110001)));
    assert!(!g.config().may_read(code(900001), code(110001)));
    // Nodes: merchants and witnesses; the operator and the tax office sign only.
    assert!(g.config().runs_node(code(110004)) && !g.config().runs_node(code(800001)));
    // The TOML form round-trips, roles and all.
    assert_eq!(Genesis::from_toml(&g.to_toml()).unwrap(), g);
    assert_eq!(
        g.config().member(code(110001)).unwrap().roles.to_string(),
        "witness+merchant"
    );
}

#[test]
fn genesis_files_with_wrong_roles_are_refused_naming_the_field() {
    let m = |roles| ("110001", roles, true);
    let e = refused(&[m(r#"["merchant"]"#)], None);
    assert!(e.contains("witness"), "{e}");
    let e = refused(&[m(r#"["witness", "king"]"#)], None);
    assert!(e.contains("members[0].roles") && e.contains("king"), "{e}");
    let e = refused(&[m(r#"["witness", "witness", "merchant"]"#)], None);
    assert!(e.contains("twice"), "{e}");
    let e = refused(&[m("[]")], None);
    assert!(e.contains("members[0].roles"), "{e}");
    let e = refused(&[("800001", r#"["witness"]"#, false)], None);
    assert!(e.contains("merchant"), "no chain at all: {e}");
    // A policy for a member that owns no chain.
    let e = refused(
        &[m(r#"["witness", "merchant"]"#), ("900001", r#"["operator"]"#, true)],
        None,
    );
    assert!(e.contains("only merchants"), "{e}");
    // The quorum is over the witnesses: two witnesses allow 2, not 3, and not 1.
    let two = [
        ("110001", r#"["witness", "merchant"]"#, true),
        ("110002", r#"["witness", "merchant"]"#, true),
        ("110003", r#"["merchant"]"#, true),
    ];
    assert!(refused(&two, Some(3)).contains("quorum"));
    assert!(refused(&two, Some(1)).contains("quorum"));
    assert_eq!(Genesis::from_toml(&file(&two, Some(2))).unwrap().config().quorum(), 2);
    // Format version 1 files (one `role` per member) are not read.
    let old = file(&[m(r#"["witness", "merchant"]"#)], None).replace("format_version = 5", "format_version = 1");
    assert!(Genesis::from_toml(&old)
        .unwrap_err()
        .to_string()
        .contains("format_version"));
}

#[test]
fn tax_rules_are_data_and_wrong_ones_are_refused_naming_the_field() {
    let one = [("110001", r#"["witness", "merchant"]"#, true)];
    let g = Genesis::from_toml(&file(&one, None)).unwrap();
    let rates = &g.config().member(code(110001)).unwrap().policy.as_ref().unwrap().rates;
    let shown: Vec<String> = rates.iter().map(|r| r.describe()).collect();
    assert_eq!(
        shown,
        ["13% from 2019-04-01", "16% until 2019-03-31", "免税"],
        "canonical order: by rate"
    );
    assert_eq!(g.classification("3070401000000000000").unwrap().short_name, "餐饮服务");
    assert_eq!(
        Genesis::from_toml(&g.to_toml()).unwrap(),
        g,
        "the TOML form round-trips"
    );
    let with = |from: &str, to: &str| {
        let text = file(&one, None).replace(from, to);
        Genesis::from_toml(&text).unwrap_err().to_string()
    };
    let e = with(
        "rate = \"16%\", until = \"2019-03-31\"",
        "rate = \"13%\", until = \"2019-04-01\"",
    );
    assert!(e.contains("members[0].tax_rates") && e.contains("overlap"), "{e}");
    let e = with("\"2019-03-31\"", "\"2019-02-30\"");
    assert!(e.contains("members[0].tax_rates") && e.contains("2019-02-30"), "{e}");
    let e = with("rate = \"exempt\"", "rate = \"free\"");
    assert!(e.contains("members[0].tax_rates"), "{e}");
    let e = with("tax_rates = [", "tax_rates_x = [");
    assert!(e.contains("tax_rates"), "{e}");
    let e = with("3070401000000000000", "307040100000000000");
    assert!(e.contains("classifications") && e.contains("19 digits"), "{e}");
    let e = with("short_name = \"餐饮服务\"", "short_name = \"\"");
    assert!(e.contains("classifications"), "{e}");
}
