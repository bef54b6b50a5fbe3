//! Parser and validator tests: the README example, every production, every error, round
//! trips, and property tests that no input panics.

use proptest::prelude::*;

use super::*;

/// The original README's example, exactly as written there.
const README: &str = include_str!("../../docs/examples/readme-policy.tlaloc");

const SMALL: &str = "apac: v1
available-resources:
    p:
        - a
        - b
who: p.a
what:
    - bk.ball
    - bk2
where:
    - p.b
how: PASSIVE
when:
    - bk.ball: $ACCESS_COUNT > 3
    - bk2: $ACCESS_FREQUENCY >= 50%
";

fn err(text: &str) -> PolicyError {
    parse(text).expect_err(text)
}

fn strict(text: &str) -> PolicyErrors {
    check(text, &CheckOptions::default()).expect_err(text)
}

fn kinds(e: &PolicyErrors) -> Vec<PolicyErrorKind> {
    e.iter().map(|e| e.kind.clone()).collect()
}

#[test]
fn the_readme_example_parses_as_written() {
    let p = parse(README).unwrap();
    assert_eq!(p.header, Header::Tlaloc);
    assert_eq!(p.version, 1);
    assert_eq!(p.resources.len(), 2);
    assert_eq!(p.resources[1].name, "pool-2");
    assert_eq!(p.resources[1].peers, ["peer-1", "peer-2", "peer-3"]);
    assert_eq!(p.declared_peers().len(), 6);
    assert_eq!(p.who, "pool-1.peer-1");
    assert_eq!(p.what, ["cubeta.red_file"]);
    assert_eq!(p.where_peers.len(), 6);
    assert_eq!(p.how, How::Active);
    assert_eq!(p.when.len(), 1);
    let t = &p.when[0];
    assert_eq!(t.target, "cubeta.red_file");
    assert_eq!(t.predicate.variable, "ACCESS_FREQUENNCY");
    assert_eq!(t.predicate.operator, Operator::Ge);
    assert_eq!(t.predicate.value, 60.6);
    assert!(t.predicate.percent);
    assert_eq!(t.predicate.resolve(), Some(Variable::AccessFrequency));
}

#[test]
fn the_readme_typo_is_an_error_with_a_suggestion_and_a_warning_when_lenient() {
    let e = strict(README);
    assert_eq!(e.len(), 1);
    let e = &e.0[0];
    assert_eq!(e.position, Position::new(23, 23));
    assert_eq!(
        e.to_string(),
        "23:23: unknown variable $ACCESS_FREQUENNCY (did you mean ACCESS_FREQUENCY?)"
    );
    let ok = check(README, &CheckOptions::default().lenient(true)).unwrap();
    assert_eq!(ok.warnings.len(), 1);
    assert_eq!(ok.warnings[0].position, Position::new(23, 23));
}

#[test]
fn every_production_parses() {
    let p = parse(SMALL).unwrap();
    assert_eq!(p.header, Header::Apac);
    assert_eq!(p.how, How::Passive);
    assert_eq!(
        p.what_items()[0],
        WhatItem::Ball {
            bucket: "bk".into(),
            ball: "ball".into()
        }
    );
    assert_eq!(p.what_items()[1], WhatItem::Bucket("bk2".into()));
    assert_eq!(p.when[1].predicate.variable, "ACCESS_FREQUENCY");
    assert!(check(SMALL, &CheckOptions::default())
        .unwrap()
        .warnings
        .is_empty());
    // Whitespace is insignificant: all on one line, and `/` as a separator.
    let flat: String = SMALL.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(parse(&flat).unwrap(), p);
    let slashes = SMALL.replace("how:", "how /").replace("who:", "who/");
    assert_eq!(parse(&slashes).unwrap(), p);
    // `$.VAR`, any-case how, comments, no spaces at all around predicates.
    let odd = SMALL
        .replace("$ACCESS_COUNT > 3", "$.ACCESS_COUNT>3 # three")
        .replace("PASSIVE", "pAsSiVe");
    assert_eq!(parse(&odd).unwrap(), p);
    // Every operator, with and without a fraction.
    for op in ["<", ">", "<=", ">=", "==", "!="] {
        let text = SMALL.replace("> 3", &format!("{op} 3.25"));
        let q = parse(&text).unwrap();
        assert_eq!(q.when[0].predicate.operator.to_string(), op);
        assert_eq!(q.when[0].predicate.value, 3.25);
    }
}

#[test]
fn display_is_canonical_and_round_trips() {
    let p = parse(README).unwrap();
    let printed = p.to_string();
    assert!(printed.contains("    - cubeta.red_file: $ACCESS_FREQUENNCY >= 60.6%\n"));
    assert_eq!(parse(&printed).unwrap(), p);
    assert_eq!(parse(&printed).unwrap().to_string(), printed);
    let q = parse(SMALL).unwrap();
    assert_eq!(q.to_string(), SMALL);
}

#[test]
fn syntax_errors_say_what_was_expected_and_where() {
    let cases: &[(&str, (u32, u32), &str)] = &[
        (
            "",
            (1, 1),
            "expected `tlaloc` or `apac`, found the end of the policy",
        ),
        (
            "yaml: v1",
            (1, 1),
            "expected `tlaloc` or `apac`, found `yaml`",
        ),
        ("tlaloc v1", (1, 8), "expected `:`, found `v1`"),
        (
            "tlaloc:",
            (1, 8),
            "expected a version such as v1, found the end",
        ),
        ("tlaloc: 1", (1, 9), "invalid version \"1\""),
        ("tlaloc: vx", (1, 9), "invalid version \"vx\""),
        ("tlaloc: v99999999999", (1, 9), "invalid version"),
        ("tlaloc: v2", (1, 9), "unsupported version v2"),
        (
            "tlaloc: v1\nwho: x",
            (2, 1),
            "expected available-resources, found `who`",
        ),
        (
            "tlaloc: v1 available-resources: who: x",
            (1, 33),
            "expected a pool name",
        ),
        (
            "tlaloc: v1 available-resources: p: who",
            (1, 36),
            "expected `-` and a peer name",
        ),
        (
            "tlaloc: v1 available-resources: p: - : ",
            (1, 38),
            "expected a peer name, found `:`",
        ),
        (
            "tlaloc: v1 available-resources: p - a",
            (1, 35),
            "expected `:`, found `-`",
        ),
    ];
    for (text, (line, col), msg) in cases {
        let e = err(text);
        assert_eq!(e.position, Position::new(*line, *col), "{text}: {e}");
        assert!(e.to_string().contains(msg), "{text}: {e}");
    }
}

#[test]
fn syntax_errors_in_later_sections() {
    let base = |rest: &str| format!("apac: v1 available-resources: p: - a {rest}");
    let cases: &[(&str, &str)] = &[
        ("what: - b", "expected who, found `what`"),
        ("who: - p.a", "expected a pool.peer name, found `-`"),
        ("who: p.a where: - p.a", "expected what, found `where`"),
        (
            "who: p.a what: where:",
            "expected `-` and a bucket or bucket.ball",
        ),
        (
            "who: p.a what: - b how: ACTIVE",
            "expected where, found `how`",
        ),
        ("who: p.a what: - b where: - p.a when:", "expected how"),
        (
            "who: p.a what: - b where: - p.a how: EAGER",
            "unknown how \"EAGER\": expected ACTIVE or PASSIVE",
        ),
        (
            "who: p.a what: - b where: - p.a how: ACTIV",
            "(did you mean ACTIVE?)",
        ),
        (
            "who: p.a what: - b where: - p.a how: ACTIVE",
            "expected when, found the end",
        ),
        (
            "who: p.a what: - b where: - p.a how: ACTIVE when: b",
            "expected `-` and a trigger",
        ),
        (
            "who: p.a what: - b where: - p.a how: ACTIVE when: - b $X > 1",
            "expected `:`, found `$`",
        ),
        (
            "who: p.a what: - b where: - p.a how: ACTIVE when: - b: X > 1",
            "expected `$` and a variable",
        ),
        (
            "who: p.a what: - b where: - p.a how: ACTIVE when: - b: $ > 1",
            "expected a variable such as ACCESS_FREQUENCY, found `>`",
        ),
        (
            "who: p.a what: - b where: - p.a how: ACTIVE when: - b: $lower > 1",
            "a variable in capitals",
        ),
        (
            "who: p.a what: - b where: - p.a how: ACTIVE when: - b: $X 1",
            "expected one of > < >= <= == !=, found `1`",
        ),
        (
            "who: p.a what: - b where: - p.a how: ACTIVE when: - b: $X >",
            "expected a number, found the end",
        ),
        (
            "who: p.a what: - b where: - p.a how: ACTIVE when: - b: $X > 1.",
            "invalid value \"1.\"",
        ),
        (
            "who: p.a what: - b where: - p.a how: ACTIVE when: - b: $X > .5",
            "invalid value \".5\"",
        ),
        (
            "who: p.a what: - b where: - p.a how: ACTIVE when: - b: $X > 1e3",
            "invalid value \"1e3\"",
        ),
        (
            "who: p.a what: - b where: - p.a how: ACTIVE when: - b: $X > 1.2.3",
            "invalid value",
        ),
        (
            "who: p.a what: - b where: - p.a how: ACTIVE when: - b: $X > 1 %%",
            "expected the end of the policy, found `%`",
        ),
        (
            "who: p.a what: - b where: - p.a how: ACTIVE when: - b: $X > 1 who",
            "expected the end of the policy, found `who`",
        ),
        (
            "who: p.a what: - b where: - p.a how: ACTIVE when: - b: $X > 1 ; ",
            "unexpected character ';'",
        ),
    ];
    for (rest, msg) in cases {
        let text = base(rest);
        let e = err(&text);
        assert!(e.to_string().contains(msg), "{text}\n  got: {e}");
    }
    let huge_number = format!(
        "who: p.a what: - b where: - p.a how: ACTIVE when: - b: $X > {}",
        "9".repeat(400)
    );
    assert!(matches!(
        err(&base(&huge_number)).kind,
        PolicyErrorKind::BadNumber(_)
    ));
}

#[test]
fn too_large_policies_are_refused_before_parsing() {
    let text = format!("{SMALL}{}", "#".repeat(MAX_POLICY_BYTES));
    assert!(matches!(err(&text).kind, PolicyErrorKind::TooLarge { .. }));
}

#[test]
fn validation_reports_every_error_in_text_order() {
    let text = "apac: v1
available-resources:
    p:
        - a
        - a
    p:
        - b
who: p.z
what:
    - bk.ball
    - bk.ball
    - x..
    - _x
where:
    - p.a
    - p.a
    - q.a
how: ACTIVE
when:
    - bk.bal: $ACCESS_COUNT > 3
    - bk.ball: $REPLICAS < 2%
    - bk.ball: $ACCESS_COUNT > 3
    - bk.ball: $NOPE > 1
";
    let e = strict(text);
    let got: Vec<(u32, PolicyErrorKind)> = e
        .iter()
        .map(|e| (e.position.line, e.kind.clone()))
        .collect();
    use PolicyErrorKind as K;
    assert_eq!(
        got,
        vec![
            (5, K::DuplicatePeer("p.a".into())),
            (6, K::DuplicatePool("p".into())),
            (
                8,
                K::UndeclaredPeer {
                    name: "p.z".into(),
                    suggestion: Some("p.a".into())
                }
            ),
            (11, K::DuplicateWhat("bk.ball".into())),
            (12, K::BadWhat("x..".into())),
            (13, K::BadWhat("_x".into())),
            (16, K::DuplicatePeer("p.a".into())),
            (
                17,
                K::UndeclaredPeer {
                    name: "q.a".into(),
                    suggestion: Some("p.a".into())
                }
            ),
            (
                20,
                K::UnknownTarget {
                    target: "bk.bal".into(),
                    suggestion: Some("bk.ball".into())
                }
            ),
            (21, K::PercentNotAllowed("REPLICAS".into())),
            (22, K::DuplicateTrigger("bk.ball".into())),
            (23, K::DuplicateTrigger("bk.ball".into())),
            (
                23,
                K::UnknownVariable {
                    name: "NOPE".into(),
                    suggestion: None
                }
            ),
        ]
    );
    // Lenient: the % becomes a warning; the rest stay errors.
    let lenient = check(text, &CheckOptions::default().lenient(true)).unwrap_err();
    assert_eq!(lenient.len(), e.len() - 1);
    assert!(!kinds(&lenient).contains(&K::PercentNotAllowed("REPLICAS".into())));
    // The message lines read as FILE:LINE:COL would want them.
    assert!(e
        .to_string()
        .lines()
        .all(|l| l.split(':').take(2).all(|n| n.parse::<u32>().is_ok())));
}

#[test]
fn known_peers_restrict_the_declared_ones() {
    let opts = CheckOptions::default().with_known_peers(["p.a"]);
    let e = check(SMALL, &opts).unwrap_err();
    assert_eq!(kinds(&e), vec![PolicyErrorKind::UnknownPeer("p.b".into())]);
    assert_eq!(e.0[0].position, Position::new(5, 11));
    let opts = CheckOptions::default().with_known_peers(["p.a", "p.b", "other"]);
    assert!(check(SMALL, &opts).is_ok());
}

#[test]
fn validate_checks_policies_built_in_code() {
    let mut p = parse(SMALL).unwrap();
    assert!(p.validate(&CheckOptions::default()).unwrap().is_empty());
    p.where_peers.push("p.c".into());
    let e = p.validate(&CheckOptions::default()).unwrap_err();
    assert_eq!(e.0[0].position.line, 12);
    p.where_peers.pop();
    p.who = "has space".into();
    assert!(p.validate(&CheckOptions::default()).is_err());
}

#[test]
fn suggestions_are_near_and_short() {
    assert_eq!(validate::edit_distance("kitten", "sitting"), 3);
    assert_eq!(validate::edit_distance("", "abc"), 3);
    assert_eq!(validate::edit_distance("ñandú", "nandu"), 2);
    assert_eq!(
        validate::nearest("ACCES_COUNT", Variable::ALL.map(Variable::name)),
        Some("ACCESS_COUNT".into())
    );
    assert_eq!(
        validate::nearest("XYZ", Variable::ALL.map(Variable::name)),
        None
    );
    assert_eq!(validate::nearest(&"A".repeat(500), ["A"]), None);
    assert_eq!(validate::nearest("", ["A"]), None);
}

#[test]
fn operators_compare() {
    use Operator::*;
    assert!(Gt.holds(2.0, 1.0) && !Gt.holds(1.0, 1.0));
    assert!(Lt.holds(0.0, 1.0) && !Lt.holds(1.0, 1.0));
    assert!(Ge.holds(1.0, 1.0) && !Ge.holds(0.9, 1.0));
    assert!(Le.holds(1.0, 1.0) && !Le.holds(1.1, 1.0));
    assert!(Eq.holds(50.0, 50.0) && !Eq.holds(50.1, 50.0));
    assert!(Ne.holds(50.1, 50.0) && !Ne.holds(50.0, 50.0));
}

// ---- property tests ----------------------------------------------------------------------

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9_-]{0,8}"
}

fn policy() -> impl Strategy<Value = AvailabilityPolicy> {
    let pools = prop::collection::vec((name(), prop::collection::vec(name(), 1..4)), 1..4);
    let items = prop::collection::vec((name(), prop::option::of(name())), 1..4);
    let ops = prop::sample::select(vec![
        Operator::Gt,
        Operator::Lt,
        Operator::Ge,
        Operator::Le,
        Operator::Eq,
        Operator::Ne,
    ]);
    let trig = (
        "[A-Z_]{1,20}",
        ops,
        0u32..1_000_000,
        0u32..1000,
        any::<bool>(),
    );
    (
        any::<bool>(),
        pools,
        items,
        prop::collection::vec(trig, 1..4),
        any::<bool>(),
    )
        .prop_map(|(apac, pools, items, trigs, active)| {
            let resources: Vec<Pool> = pools
                .into_iter()
                .map(|(name, peers)| Pool { name, peers })
                .collect();
            let declared: Vec<String> = resources
                .iter()
                .flat_map(|p| p.peers.iter().map(move |q| format!("{}.{q}", p.name)))
                .collect();
            let what: Vec<String> = items
                .into_iter()
                .map(|(b, ball)| match ball {
                    Some(ball) => format!("{b}.{ball}"),
                    None => b,
                })
                .collect();
            let when = trigs
                .into_iter()
                .enumerate()
                .map(|(i, (variable, operator, int, frac, percent))| Trigger {
                    target: what[i % what.len()].clone(),
                    predicate: Predicate {
                        variable,
                        operator,
                        value: format!("{int}.{frac}").parse().unwrap_or(0.0),
                        percent,
                    },
                })
                .collect();
            AvailabilityPolicy {
                header: if apac { Header::Apac } else { Header::Tlaloc },
                version: 1,
                who: declared[0].clone(),
                where_peers: declared.clone(),
                resources,
                what,
                how: if active { How::Active } else { How::Passive },
                when,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn print_then_parse_is_identity(p in policy()) {
        let printed = p.to_string();
        let back = parse(&printed).map_err(|e| TestCaseError::fail(format!("{e}\n{printed}")))?;
        prop_assert_eq!(&back, &p);
        prop_assert_eq!(back.to_string(), printed);
        // Validation never panics on them either.
        let _ = p.validate(&CheckOptions::default().lenient(true));
    }

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        let _ = check(&text, &CheckOptions::default());
        let _ = check(&text, &CheckOptions::default().lenient(true));
    }

    #[test]
    fn grammar_soup_never_panics(words in prop::collection::vec(prop::sample::select(vec![
        "tlaloc", "apac", "v1", ":", "/", "-", "$", "%", ">", ">=", "==", "!=", "<", "=", "!",
        "available-resources", "who", "what", "where", "how", "when", "ACTIVE", "PASSIVE",
        "p", "p.a", "b.k", "ACCESS_COUNT", "1", "2.5", "\n", "#", ".", "\u{0}", "ñ",
    ]), 0..60)) {
        let text = words.join(" ");
        let _ = check(&text, &CheckOptions::default());
        let glued = words.concat();
        let _ = check(&glued, &CheckOptions::default().lenient(true));
    }

    #[test]
    fn mutations_of_valid_policies_never_panic(
        p in policy(),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), 0usize..5, "\\PC{0,3}"), 1..5),
    ) {
        let mut chars: Vec<char> = p.to_string().chars().collect();
        for (at, len, insert) in cuts {
            if chars.is_empty() { break; }
            let i = at.index(chars.len());
            let end = (i + len).min(chars.len());
            chars.splice(i..end, insert.chars());
        }
        let text: String = chars.into_iter().collect();
        match check(&text, &CheckOptions::default().lenient(true)) {
            Ok(checked) => {
                // Whatever parses also round-trips.
                prop_assert_eq!(parse(&checked.policy.to_string()).ok(), Some(checked.policy));
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for e in errors.iter() {
                    prop_assert!(e.position.line >= 1 && e.position.column >= 1);
                }
            }
        }
    }
}
