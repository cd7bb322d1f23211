use super::*;

fn ctx() -> RuleContext {
    RuleContext {
        detectors: vec![
            ("divisions".into(), "division".into()),
            ("flash".into(), "activity".into()),
        ],
        streams: vec!["raw".into(), "divisions".into(), "denoised".into()],
    }
}

/// The key of the first problem of `text` (parse errors included).
fn first_key(text: &str) -> String {
    match RuleConfig::from_toml(text) {
        Err(e) => format!("parse: {}", e.problem),
        Ok(r) => r.check(&ctx()).err().map(|e| e.key).unwrap_or_default(),
    }
}

const EDA: &str = r#"
name = "fast-on-division"
when = { detector = "divisions", hysteresis = { upper = 0.5, lower = 0.2, min_dwell_s = 20 } }
actions = [
  { type = "set_interval", speedup = 10 },
  { type = "capture", stream = "raw", pre_frames = 20, post_frames = 40 },
  { type = "emit", name = "move_stage", params = { x = "{x}", y = "{y}", z_um = 1.5 } },
]
"#;

#[test]
fn a_good_rule_parses_checks_and_round_trips_through_toml() {
    let r = RuleConfig::from_toml(EDA).unwrap();
    assert_eq!(r.check(&ctx()), Ok(()));
    assert_eq!(r.actions.len(), 3);
    let again = RuleConfig::from_toml(&r.to_toml()).unwrap();
    assert_eq!(again, r);
}

#[test]
fn bad_rules_name_the_key_and_the_problem() {
    let event_rule = |when: &str, actions: &str| {
        format!("name = \"r\"\nwhen = {{ {when} }}\nactions = [ {actions} ]\n")
    };
    let emit = r#"{ type = "emit", name = "note" }"#;
    for (text, key) in [
        (event_rule("detector = \"nope\"", emit), "when.detector"),
        (event_rule("kind = \"explosion\"", emit), "when.kind"),
        (
            event_rule("detector = \"flash\", kind = \"division\"", emit),
            "when.kind",
        ),
        (event_rule("", emit), "when"),
        (
            event_rule("kind = \"division\", count = 3", emit),
            "when.window_s",
        ),
        (
            event_rule("kind = \"division\", count = 2, window_s = 0.0", emit),
            "when.window_s",
        ),
        (
            event_rule("kind = \"division\", count = 0", emit),
            "when.count",
        ),
        (
            event_rule("kind = \"division\", cooldown_s = -1.0", emit),
            "when.cooldown_s",
        ),
        (
            event_rule("kind = \"division\", max_per_minute = 0", emit),
            "when.max_per_minute",
        ),
        (
            event_rule("kind = \"division\", roi = [0, 0, 0, 10]", emit),
            "when.roi",
        ),
        (
            event_rule(
                "kind = \"division\", hysteresis = { upper = 0.5, lower = 0.2 }",
                emit,
            ),
            "when.detector",
        ),
        (
            event_rule(
                "detector = \"divisions\", hysteresis = { upper = 0.2, lower = 0.5 }",
                emit,
            ),
            "when.hysteresis",
        ),
        (event_rule("kind = \"division\"", ""), "actions"),
        (
            event_rule(
                "kind = \"division\"",
                r#"{ type = "set_interval", interval_ms = 100 }"#,
            ),
            "actions[0].duration_s",
        ),
        (
            event_rule(
                "kind = \"division\"",
                r#"{ type = "set_interval", interval_ms = 0.001, duration_s = 5 }"#,
            ),
            "actions[0].interval_ms",
        ),
        (
            event_rule(
                "kind = \"division\"",
                r#"{ type = "set_interval", duration_s = 5 }"#,
            ),
            "actions[0].interval_ms",
        ),
        (
            event_rule(
                "kind = \"division\"",
                r#"{ type = "capture", stream = "nowhere", pre_frames = 2 }"#,
            ),
            "actions[0].stream",
        ),
        (
            event_rule(
                "kind = \"division\"",
                r#"{ type = "capture", pre_frames = 100000 }"#,
            ),
            "actions[0].pre_frames",
        ),
        (
            event_rule(
                "kind = \"division\"",
                r#"{ type = "emit", name = "go", params = { x = "{rm -rf}" } }"#,
            ),
            "actions[0].params.x",
        ),
        (
            event_rule(
                "kind = \"division\"",
                r#"{ type = "emit", name = "go", params = { x = [1, 2] } }"#,
            ),
            "actions[0].params.x",
        ),
        (
            event_rule("kind = \"division\"", r#"{ type = "emit", name = "" }"#),
            "actions[0].name",
        ),
    ] {
        assert_eq!(first_key(&text), key, "{text}");
    }
    // Unknown keys, unknown action types and broken TOML do not parse, and say why.
    assert!(
        first_key(&event_rule("kind = \"division\", sometimes = true", emit)).contains("sometimes")
    );
    assert!(
        first_key(&event_rule(
            "kind = \"division\"",
            r#"{ type = "shell", cmd = "ls" }"#
        ))
        .contains("shell")
    );
    assert!(first_key("name = ").starts_with("parse: "));
}

#[test]
fn templates_fill_known_placeholders_only() {
    let filled = fill_template("at {x},{y} in {frame}", |n| match n {
        "x" => "1.5".into(),
        "y" => "2".into(),
        "frame" => "7".into(),
        _ => unreachable!(),
    });
    assert_eq!(filled, "at 1.5,2 in 7");
    assert!(check_template("{x}{y}").is_ok());
    assert!(check_template("{x").is_err());
    assert!(check_template("{shell}").is_err());
}
