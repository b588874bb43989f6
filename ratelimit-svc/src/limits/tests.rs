use std::path::PathBuf;

use super::*;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/limits")
}

fn gateway_rules() -> Rules {
    Rules::load(&fixtures().join("gateway.yaml")).expect("example rules load")
}

fn limited(resolution: Resolution) -> Resolved {
    match resolution {
        Resolution::Limited(resolved) => resolved,
        other => panic!("expected a limit, got {other:?}"),
    }
}

#[test]
fn the_example_file_loads_both_domains() {
    assert_eq!(gateway_rules().domain_count(), 2);
}

#[test]
fn exact_value_matches_with_its_limit_and_name() {
    let resolved = limited(gateway_rules().resolve("gateway", &[("tier", "free")], None));
    assert_eq!(resolved.limit.requests_per_unit, 100);
    assert_eq!(resolved.limit.unit, Unit::Minute);
    assert_eq!(resolved.limit.name.as_deref(), Some("free-tier"));
    assert_eq!(resolved.limit.kind, Kind::Requests);
    assert_eq!(resolved.source, Source::Rule);
    assert_eq!(resolved.bucket, "rl|gateway|tier=free");
    assert!(!resolved.shadow);
}

#[test]
fn unlimited_rule_and_unknown_value_and_unknown_domain() {
    let rules = gateway_rules();
    assert_eq!(
        rules.resolve("gateway", &[("tier", "internal")], None),
        Resolution::Unlimited
    );
    assert_eq!(
        rules.resolve("gateway", &[("tier", "gold")], None),
        Resolution::NoRule
    );
    assert_eq!(
        rules.resolve("elsewhere", &[("tier", "free")], None),
        Resolution::NoRule
    );
}

#[test]
fn key_without_value_gives_each_value_its_own_bucket() {
    let rules = gateway_rules();
    let a = limited(rules.resolve("gateway", &[("model", "claude-a")], None));
    let b = limited(rules.resolve("gateway", &[("model", "claude-b")], None));
    assert_eq!(a.limit.unit, Unit::Second);
    assert_ne!(a.bucket, b.bucket);
}

#[test]
fn nested_descriptor_matches_only_the_full_path_and_carries_shadow_mode() {
    let rules = gateway_rules();
    let nested = limited(rules.resolve("gateway", &[("model", "m"), ("key_id", "k1")], None));
    assert_eq!(nested.limit.requests_per_unit, 30);
    assert!(nested.shadow);
    assert_eq!(nested.bucket, "rl|gateway|model=m|key_id=k1");
    // Longer than the tree: no rule (and not a per-key entry either).
    assert_eq!(
        rules.resolve(
            "gateway",
            &[("model", "m"), ("key_id", "k1"), ("x", "y")],
            None
        ),
        Resolution::NoRule
    );
    // Wrong order: no rule.
    assert_eq!(
        rules.resolve("gateway", &[("key_id", "k1"), ("model", "m")], None),
        Resolution::NoRule
    );
}

#[test]
fn prefix_wildcard_matches_values_that_start_with_it() {
    let rules = gateway_rules();
    let hit = limited(rules.resolve("gateway", &[("client", "batch-nightly")], None));
    assert_eq!(hit.limit.unit, Unit::Hour);
    assert_eq!(
        rules.resolve("gateway", &[("client", "interactive")], None),
        Resolution::NoRule
    );
}

#[test]
fn exact_value_wins_over_prefix_and_prefix_over_any() {
    let rules = Rules::from_yaml(
        "domain: d\ndescriptors:\n\
         - {key: k, rate_limit: {unit: second, requests_per_unit: 1}}\n\
         - {key: k, value: 'ab*', rate_limit: {unit: second, requests_per_unit: 2}}\n\
         - {key: k, value: abc, rate_limit: {unit: second, requests_per_unit: 3}}\n",
    )
    .expect("valid");
    let n = |v| {
        limited(rules.resolve("d", &[("k", v)], None))
            .limit
            .requests_per_unit
    };
    assert_eq!(n("abc"), 3);
    assert_eq!(n("abd"), 2);
    assert_eq!(n("zzz"), 1);
}

#[test]
fn per_key_rpm_and_tpm_come_from_the_descriptor_value() {
    let rules = Rules::empty();
    let rpm = limited(rules.resolve("gateway", &[("key_id", "k1"), ("rpm", "50")], None));
    assert_eq!(rpm.limit.requests_per_unit, 50);
    assert_eq!(rpm.limit.unit, Unit::Minute);
    assert_eq!(rpm.limit.kind, Kind::Requests);
    assert_eq!(rpm.source, Source::PerKey);
    assert_eq!(rpm.bucket, "rl|gateway|key_id=k1|rpm");

    let tpm = limited(rules.resolve("gateway", &[("key_id", "k1"), ("tpm", "1000")], None));
    assert_eq!(tpm.limit.kind, Kind::Tokens);
    assert_eq!(tpm.bucket, "rl|gateway|key_id=k1|tpm");

    // A new limit value keeps the same bucket (the key's history survives a limit change).
    let raised = limited(rules.resolve("gateway", &[("key_id", "k1"), ("tpm", "5000")], None));
    assert_eq!(raised.bucket, tpm.bucket);
}

#[test]
fn per_key_zero_is_unlimited_and_garbage_is_invalid() {
    let rules = Rules::empty();
    assert_eq!(
        rules.resolve("gateway", &[("key_id", "k"), ("rpm", "0")], None),
        Resolution::Unlimited
    );
    assert!(matches!(
        rules.resolve("gateway", &[("key_id", "k"), ("tpm", "lots")], None),
        Resolution::Invalid(_)
    ));
    assert!(matches!(
        rules.resolve("gateway", &[("key_id", "k"), ("rpm", "-1")], None),
        Resolution::Invalid(_)
    ));
    assert_eq!(rules.resolve("gateway", &[], None), Resolution::NoRule);
    // The per-key entry must be last.
    assert_eq!(
        rules.resolve("gateway", &[("rpm", "5"), ("key_id", "k")], None),
        Resolution::NoRule
    );
}

#[test]
fn a_yaml_rule_takes_precedence_over_a_per_key_entry() {
    let rules = Rules::from_yaml(
        "domain: gateway\ndescriptors:\n- key: key_id\n  value: vip\n  descriptors:\n  - {key: rpm, rate_limit: {unlimited: true}}\n",
    )
    .expect("valid");
    assert_eq!(
        rules.resolve("gateway", &[("key_id", "vip"), ("rpm", "5")], None),
        Resolution::Unlimited
    );
    assert!(matches!(
        rules.resolve("gateway", &[("key_id", "other"), ("rpm", "5")], None),
        Resolution::Limited(_)
    ));
}

#[test]
fn an_envoy_limit_override_wins_and_gets_its_own_bucket() {
    let resolved =
        limited(gateway_rules().resolve("gateway", &[("tier", "free")], Some((7, Unit::Hour))));
    assert_eq!(resolved.limit.requests_per_unit, 7);
    assert_eq!(resolved.source, Source::Override);
    assert_eq!(resolved.bucket, "rl|gateway|tier=free|@7/hour");
}

#[test]
fn separators_in_values_cannot_forge_another_bucket() {
    let rules = Rules::empty();
    let forged = limited(rules.resolve("gateway", &[("key_id", "a|rpm=1"), ("rpm", "5")], None));
    assert_eq!(forged.bucket, "rl|gateway|key_id=a%7Crpm%3D1|rpm");
}

#[test]
fn every_invalid_fixture_fails_with_its_expected_message() {
    let dir = fixtures().join("invalid");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read fixture");
        let expected = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no '# expect:' line", path.display()));
        let error = Rules::from_yaml(&text)
            .expect_err(&format!("{} should be rejected", path.display()))
            .to_string();
        assert!(
            error.contains(expected),
            "{}: error {error:?} does not contain {expected:?}",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} fixtures found");
}

#[test]
fn a_missing_file_names_the_path() {
    let error = Rules::load(&fixtures().join("nope.yaml")).expect_err("missing");
    assert!(error.to_string().contains("nope.yaml"));
}

#[test]
fn empty_documents_are_ignored() {
    let rules = Rules::from_yaml("---\n---\ndomain: a\n---\n").expect("valid");
    assert_eq!(rules.domain_count(), 1);
}

#[test]
fn plain_text_is_copied_as_the_escaper_would_write_it() {
    for text in [
        "key_id",
        "bench-1",
        "a|b",
        "a=b",
        "100%",
        "with space",
        "tab\there",
        "del\u{7f}",
        "caf\u{e9}",
        "~!@#$^&*()_+[]{};:'\",.<>/?`",
        "",
    ] {
        let mut fast = String::new();
        push_escaped(&mut fast, text);
        let slow: String = utf8_percent_encode(text, KEY_ESCAPES).collect();
        assert_eq!(fast, slow, "{text:?}");
    }
}
