//! Cost arithmetic, price lookup and tier multipliers.

use super::*;

fn tokens(input: u64, output: u64) -> Tokens {
    Tokens {
        input,
        output,
        ..Tokens::default()
    }
}

#[test]
fn cost_is_exact_in_nano_usd() {
    let price = Price::from_input_output(3.0, 15.0);
    // 1000 input at $3/MTok = $0.003, 500 output at $15/MTok = $0.0075.
    assert_eq!(cost_nanos(&price, &tokens(1000, 500), 1.0), 10_500_000);
    assert_eq!(cost_nanos(&price, &tokens(1000, 500), 0.5), 5_250_000);
    let cached = Tokens {
        cache_read: 1_000_000,
        cache_write_5m: 1_000_000,
        cache_write_1h: 1_000_000,
        ..Tokens::default()
    };
    // 0.30 + 3.75 + 6.00 USD.
    assert_eq!(cost_nanos(&price, &cached, 1.0), usd_to_nanos(10.05));
    assert_eq!(nanos_to_usd(usd_to_nanos(50.0)), 50.0);
}

#[test]
fn lookup_prefers_the_table_then_the_longest_pattern() {
    let book = PriceBook::new(TierMultipliers::default());
    let opus45 = book
        .lookup(
            "us.anthropic.claude-opus-4-5-20251101-v1:0",
            "claude-opus-4-5",
        )
        .unwrap();
    assert_eq!(opus45.input, 5.0);
    let opus41 = book
        .lookup("anthropic.claude-opus-4-1-20250805-v1:0", "claude-opus-4-1")
        .unwrap();
    assert_eq!(opus41.input, 15.0);
    assert_eq!(book.lookup("qwen.qwen3-32b-v1:0", "qwen3"), None);

    let custom = Price::from_input_output(1.0, 2.0);
    book.replace_overrides(vec![
        ("qwen3".into(), custom),
        ("claude-opus-4-5".into(), custom),
    ]);
    assert_eq!(book.lookup("qwen.qwen3-32b-v1:0", "qwen3"), Some(custom));
    assert_eq!(
        book.lookup("us.anthropic.claude-opus-4-5-20251101-v1:0", "x"),
        Some(custom)
    );
    assert_eq!(book.entries()[0].source, "table");
    let cost = book.cost(
        "qwen.qwen3-32b-v1:0",
        "qwen3",
        Some("flex"),
        &tokens(1_000_000, 0),
    );
    assert_eq!(cost, Some(usd_to_nanos(0.5)));
}

#[test]
fn tier_multipliers_parse_and_apply() {
    let m = TierMultipliers::parse("flex=0.4, priority=2").unwrap();
    assert_eq!((m.flex, m.priority, m.default), (0.4, 2.0, 1.0));
    assert_eq!(m.for_tier(Some("priority")), 2.0);
    assert_eq!(m.for_tier(None), 1.0);
    assert!(TierMultipliers::parse("turbo=1").is_err());
    assert!(TierMultipliers::parse("flex").is_err());
    assert!(TierMultipliers::parse("flex=-1").is_err());
}

#[test]
fn prices_are_validated() {
    assert!(Price::from_input_output(3.0, 15.0).validate().is_ok());
    let bad = Price {
        output: f64::NAN,
        ..Price::from_input_output(3.0, 15.0)
    };
    assert_eq!(
        bad.validate().unwrap_err().message,
        "output: must be a USD price per million tokens, 0 or more"
    );
}

#[test]
fn usage_splits_into_priced_tokens() {
    let usage = TokenUsage {
        input_tokens: 1,
        output_tokens: 2,
        cache_read_input_tokens: 3,
        cache_creation_input_tokens: 4,
    };
    let t = Tokens::from_usage(&usage, 0);
    assert_eq!(
        (
            t.input,
            t.output,
            t.cache_read,
            t.cache_write_5m,
            t.cache_write()
        ),
        (1, 2, 3, 4, 4)
    );
    let t = Tokens::from_usage(&usage, 3);
    assert_eq!(
        (t.cache_write_5m, t.cache_write_1h, t.cache_write()),
        (1, 3, 4)
    );
    // A split larger than the total is clamped: never more writes than reported.
    let t = Tokens::from_usage(&usage, 9);
    assert_eq!((t.cache_write_5m, t.cache_write_1h), (0, 4));
}

#[test]
fn one_hour_cache_writes_cost_twice_the_input_price() {
    let price = Price::from_input_output(3.0, 15.0);
    let usage = TokenUsage {
        cache_creation_input_tokens: 1_000_000,
        ..TokenUsage::default()
    };
    // All 5-minute: 1.25 x $3; all 1-hour: 2 x $3; half and half: the mean.
    assert_eq!(
        cost_nanos(&price, &Tokens::from_usage(&usage, 0), 1.0),
        usd_to_nanos(3.75)
    );
    assert_eq!(
        cost_nanos(&price, &Tokens::from_usage(&usage, 1_000_000), 1.0),
        usd_to_nanos(6.0)
    );
    assert_eq!(
        cost_nanos(&price, &Tokens::from_usage(&usage, 500_000), 1.0),
        usd_to_nanos(4.875)
    );
}
