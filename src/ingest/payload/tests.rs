//! Table-driven tests for [`super::parse`], plus "never panics" properties.

use proptest::prelude::*;

use super::*;

const NOW: f64 = 1_700_000_000.0;

fn build_params(format: PayloadFormat) -> PayloadParams {
    PayloadParams {
        format,
        ..PayloadParams::default()
    }
}

fn with_channels(names: &[&str]) -> PayloadParams {
    PayloadParams {
        channels: Some(names.iter().map(|s| Field::parse(s).expect("field")).collect()),
        ..PayloadParams::default()
    }
}

fn ch(pairs: &[(&str, f64)]) -> Channels<'static> {
    pairs.iter().map(|(n, v)| (n.to_string().into(), *v)).collect()
}

/// A record with its own copies of the names, to compare with the expected ones (a
/// record's lifetime is invariant: its lists are `SmallVec`s).
fn owned(r: Parsed<'_>) -> Parsed<'static> {
    let own = |s: Cow<'_, str>| Cow::Owned(s.into_owned());
    Parsed {
        sensor: r.sensor.map(own),
        ts: r.ts,
        channels: r.channels.into_iter().map(|(n, v)| (own(n), v)).collect(),
        unselected: r.unselected,
    }
}

struct Good {
    name: &'static str,
    params: PayloadParams,
    input: &'static str,
    want: Vec<Parsed<'static>>,
}

fn one(ts: f64, pairs: &[(&str, f64)]) -> Vec<Parsed<'static>> {
    vec![Parsed {
        sensor: None,
        ts,
        channels: ch(pairs),
        unselected: None,
    }]
}

/// One record of a sensor named in the payload, stamped with the arrival time.
fn of_sensor(sensor: &str, pairs: &[(&str, f64)]) -> Vec<Parsed<'static>> {
    vec![Parsed {
        sensor: Some(sensor.to_owned().into()),
        ..one(NOW, pairs).remove(0)
    }]
}

#[test]
fn good_payloads_parse_to_expected_records() {
    let senml_bn = PayloadParams {
        format: PayloadFormat::Senml,
        sensor_field: Some(Field::key("bn")),
        ..PayloadParams::default()
    };
    let cases = vec![
        Good {
            name: "json numeric ts, channels sorted by name",
            params: PayloadParams::default(),
            input: r#"{"ts": 1700000000.5, "vibration": 0.3, "current": 10, "temperature": 21.5}"#,
            want: one(
                1_700_000_000.5,
                &[("current", 10.0), ("temperature", 21.5), ("vibration", 0.3)],
            ),
        },
        Good {
            name: "json rfc3339 ts with offset and fraction",
            params: PayloadParams::default(),
            input: r#"{"ts": "2023-11-14T23:13:20.250+01:00", "t": 1}"#,
            want: one(1_700_000_000.25, &[("t", 1.0)]),
        },
        Good {
            name: "json numeric string ts",
            params: PayloadParams::default(),
            input: r#"{"ts": "1700000000", "a": 1}"#,
            want: one(NOW, &[("a", 1.0)]),
        },
        Good {
            name: "json missing ts uses arrival time",
            params: PayloadParams::default(),
            input: r#"{"a": 2, "label": "x", "ok": true}"#,
            want: one(NOW, &[("a", 2.0)]),
        },
        Good {
            name: "json configured channels keep configured order",
            params: with_channels(&["z", "a"]),
            input: r#"{"ts": 1700000000, "a": 1, "z": 2, "extra": 3}"#,
            want: one(NOW, &[("z", 2.0), ("a", 1.0)]),
        },
        Good {
            name: "json sensor from field, not a channel",
            params: PayloadParams {
                sensor_field: Some(Field::key("id")),
                ..PayloadParams::default()
            },
            input: r#"{"id": "pump-07", "a": 1}"#,
            want: of_sensor("pump-07", &[("a", 1.0)]),
        },
        Good {
            name: "number with whitespace",
            params: build_params(PayloadFormat::Number),
            input: " 21.5\n",
            want: one(NOW, &[("value", 21.5)]),
        },
        Good {
            name: "senml relative times grouped and sorted",
            params: build_params(PayloadFormat::Senml),
            input: r#"[{"bn":"dev1:","bt":-10,"n":"temp","v":20},{"n":"hum","v":40},
                       {"n":"temp","v":21,"t":-20}]"#,
            want: vec![
                Parsed {
                    sensor: None,
                    ts: NOW - 30.0,
                    channels: ch(&[("temp", 21.0)]),
                    unselected: None,
                },
                Parsed {
                    sensor: None,
                    ts: NOW - 10.0,
                    channels: ch(&[("hum", 40.0), ("temp", 20.0)]),
                    unselected: None,
                },
            ],
        },
        Good {
            name: "senml absolute time, base value, text records ignored, sensor from bn",
            params: senml_bn,
            input: r#"[{"bn":"urn:dev:ow:10e2:","bt":1.6999e9,"bv":100,"n":"p","v":1},
                       {"n":"status","vs":"ok"},{"n":"q","v":-1}]"#,
            want: vec![Parsed {
                sensor: Some("urn:dev:ow:10e2".into()),
                ts: 1.6999e9,
                channels: ch(&[("p", 101.0), ("q", 99.0)]),
                unselected: None,
            }],
        },
        Good {
            name: "json configured channel absent: a partial update",
            params: with_channels(&["a", "b"]),
            input: r#"{"ts": 1700000000, "b": 2}"#,
            want: one(NOW, &[("b", 2.0)]),
        },
        Good {
            name: "json pointers for channels and timestamp (Telegraf), named by the last token",
            params: PayloadParams {
                timestamp_field: Field::parse("/timestamp").expect("pointer"),
                ..with_channels(&["/fields/usage_idle", "/fields/a~1b"])
            },
            input: r#"{"fields": {"usage_idle": 98.5, "a/b": 1, "other": 3},
                       "name": "cpu", "tags": {"host": "gw1"}, "timestamp": 1699999990}"#,
            want: one(1_699_999_990.0, &[("usage_idle", 98.5), ("a/b", 1.0)]),
        },
        Good {
            name: "json sensor from a pointer",
            params: PayloadParams {
                sensor_field: Some(Field::parse("/tags/host").expect("pointer")),
                ..with_channels(&["/fields/t"])
            },
            input: r#"{"fields": {"t": 1}, "tags": {"host": "gw1"}}"#,
            want: of_sensor("gw1", &[("t", 1.0)]),
        },
        Good {
            name: "json nested object no configuration selects is reported, not read",
            params: PayloadParams::default(),
            input: r#"{"ts": 1700000000, "a": 1, "meta": {"fw": 2}, "list": [3]}"#,
            want: vec![Parsed {
                sensor: None,
                ts: NOW,
                channels: ch(&[("a", 1.0)]),
                unselected: Some("list".into()),
            }],
        },
        Good {
            name: "json nested object under the timestamp pointer is selected",
            params: PayloadParams {
                timestamp_field: Field::parse("/meta/ts").expect("pointer"),
                ..PayloadParams::default()
            },
            input: r#"{"meta": {"ts": 1700000000}, "a": 1}"#,
            want: one(NOW, &[("a", 1.0)]),
        },
        Good {
            name: "senml records without a configured channel are no update",
            params: PayloadParams {
                channels: Some(vec![Field::key("current")]),
                ..build_params(PayloadFormat::Senml)
            },
            input: r#"[{"bt":1700000000,"n":"voltage","v":120.1},{"n":"current","t":-1,"v":1.2}]"#,
            want: one(NOW - 1.0, &[("current", 1.2)]),
        },
    ];
    for case in cases {
        let got = parse(case.input.as_bytes(), &case.params, NOW);
        let got = got.map(|records| records.into_iter().map(owned).collect::<Vec<_>>());
        assert_eq!(got, Ok(case.want), "case: {}", case.name);
    }
}

struct Bad {
    name: &'static str,
    params: PayloadParams,
    input: &'static [u8],
    kind: &'static str,
}

#[test]
fn bad_payloads_fail_with_expected_kind() {
    let json = PayloadParams::default;
    let small = PayloadParams {
        max_payload_bytes: 8,
        ..PayloadParams::default()
    };
    let strict = PayloadParams {
        require_timestamp: true,
        ..PayloadParams::default()
    };
    let by_id = PayloadParams {
        sensor_field: Some(Field::key("id")),
        ..PayloadParams::default()
    };
    let number = || build_params(PayloadFormat::Number);
    let senml = || build_params(PayloadFormat::Senml);
    let senml_bn = PayloadParams {
        sensor_field: Some(Field::key("bn")),
        ..senml()
    };
    let senml_ch = PayloadParams {
        channels: Some(vec![Field::key("x")]),
        ..senml()
    };
    #[rustfmt::skip]
    let cases = vec![
        Bad { name: "oversize", params: small, input: br#"{"a": 1.00000}"#, kind: "too_large" },
        Bad { name: "latin-1 bytes", params: json(), input: b"{\"a\xe9\": 1}", kind: "not_utf8" },
        Bad { name: "truncated json", params: json(), input: br#"{"a": 1"#, kind: "not_json" },
        Bad { name: "empty", params: json(), input: b"", kind: "not_json" },
        Bad { name: "array for json", params: json(), input: b"[1]", kind: "wrong_type" },
        Bad { name: "configured channel is string", params: with_channels(&["a"]), input: br#"{"a": "1"}"#, kind: "wrong_type" },
        Bad { name: "ts is bool", params: json(), input: br#"{"ts": true, "a": 1}"#, kind: "wrong_type" },
        Bad { name: "1e400 overflows", params: json(), input: br#"{"a": 1e400}"#, kind: "not_finite" },
        Bad { name: "missing ts when required", params: strict, input: br#"{"a": 1}"#, kind: "missing_timestamp" },
        Bad { name: "ts garbage string", params: json(), input: br#"{"ts": "yesterday", "a": 1}"#, kind: "bad_timestamp" },
        Bad { name: "ts in milliseconds read as seconds", params: PayloadParams { timestamp_unit: EpochUnit::S, ..json() }, input: br#"{"ts": 1700000000000, "a": 1}"#, kind: "absurd_timestamp" },
        Bad { name: "ts in 1970", params: json(), input: br#"{"ts": 5, "a": 1}"#, kind: "absurd_timestamp" },
        Bad { name: "configured channels all missing", params: with_channels(&["a", "b"]), input: br#"{"c": 1}"#, kind: "missing_channel" },
        Bad { name: "configured pointer channel is an object", params: with_channels(&["/fields"]), input: br#"{"fields": {"a": 1}}"#, kind: "wrong_type" },
        Bad { name: "only a nested object (Telegraf, default config)", params: json(), input: br#"{"fields": {"a": 1}, "name": "cpu"}"#, kind: "no_channels" },
        Bad { name: "no numeric fields", params: json(), input: br#"{"ts": 1700000000, "s": "x"}"#, kind: "no_channels" },
        Bad { name: "sensor field missing", params: by_id.clone(), input: br#"{"a": 1}"#, kind: "missing_sensor" },
        Bad { name: "sensor field empty", params: by_id.clone(), input: br#"{"id": "", "a": 1}"#, kind: "missing_sensor" },
        Bad { name: "sensor field numeric", params: by_id, input: br#"{"id": 3, "a": 1}"#, kind: "wrong_type" },
        Bad { name: "number is text", params: number(), input: b"warm", kind: "wrong_type" },
        Bad { name: "number is NaN", params: number(), input: b"NaN", kind: "not_finite" },
        Bad { name: "number overflows", params: number(), input: b"1e400", kind: "not_finite" },
        Bad { name: "senml object", params: senml(), input: br#"{"v": 1}"#, kind: "wrong_type" },
        Bad { name: "senml record not object", params: senml(), input: b"[1]", kind: "wrong_type" },
        Bad { name: "senml only strings", params: senml(), input: br#"[{"n":"a","vs":"x"}]"#, kind: "no_channels" },
        Bad { name: "senml duplicate", params: senml(), input: br#"[{"n":"a","v":1},{"n":"a","v":2}]"#, kind: "duplicate_channel" },
        Bad { name: "senml value overflow via bv", params: senml(), input: br#"[{"bv":1e308,"n":"a","v":1e308}]"#, kind: "not_finite" },
        Bad { name: "senml absurd absolute time", params: senml(), input: br#"[{"n":"a","v":1,"t":300000000}]"#, kind: "absurd_timestamp" },
        Bad { name: "senml no bn for sensor", params: senml_bn, input: br#"[{"n":"a","v":1}]"#, kind: "missing_sensor" },
        Bad { name: "senml configured channels all missing", params: senml_ch, input: br#"[{"n":"a","v":1}]"#, kind: "missing_channel" },
    ];
    for case in cases {
        match parse(case.input, &case.params, NOW) {
            Err(e) => assert_eq!(e.kind(), case.kind, "case: {} ({e})", case.name),
            Ok(r) => panic!("case {} parsed: {r:?}", case.name),
        }
    }
}

#[test]
fn numeric_timestamps_follow_timestamp_unit() {
    let json = build_params(PayloadFormat::Json);
    let unit = |u| PayloadParams {
        timestamp_unit: u,
        ..build_params(PayloadFormat::Json)
    };
    let cases = [
        (
            "seconds, auto",
            json.clone(),
            r#"{"ts": 1699999990, "t": 1}"#,
            1_699_999_990.0,
        ),
        (
            "Date.now() ms, auto",
            json.clone(),
            r#"{"ts": 1699999990123, "t": 1}"#,
            1_699_999_990.123,
        ),
        (
            "ns as a string, auto",
            json.clone(),
            r#"{"ts": "1699999990000000000", "t": 1}"#,
            1_699_999_990.0,
        ),
        (
            "ms, stated",
            unit(EpochUnit::Ms),
            r#"{"ts": 1699999990500, "t": 1}"#,
            1_699_999_990.5,
        ),
        (
            "us, stated",
            unit(EpochUnit::Us),
            r#"{"ts": 1699999990000000, "t": 1}"#,
            1_699_999_990.0,
        ),
        (
            "RFC 3339 ignores the unit",
            unit(EpochUnit::Ms),
            r#"{"ts": "2023-11-14T22:13:10Z", "t": 1}"#,
            1_699_999_990.0,
        ),
    ];
    for (name, params, payload, want) in cases {
        let got = parse(payload.as_bytes(), &params, NOW).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!((got[0].ts - want).abs() < 1e-6, "{name}: {}", got[0].ts);
    }
    // A millisecond value read as seconds is thousands of years ahead: refused, not
    // silently scored at the wrong time.
    let err = parse(br#"{"ts": 1699999990123, "t": 1}"#, &unit(EpochUnit::S), NOW).unwrap_err();
    assert_eq!(err.kind(), "absurd_timestamp");
}

#[test]
fn a_payload_of_only_unselected_nested_fields_says_how_to_select_them() {
    let err = parse(
        br#"{"fields": {"temperature": 21.5}, "timestamp": "x"}"#,
        &PayloadParams {
            timestamp_field: Field::parse("/timestamp").expect("pointer"),
            require_timestamp: false,
            ..PayloadParams::default()
        },
        NOW,
    )
    .unwrap_err();
    assert_eq!(err.unselected(), None, "the timestamp is bad first: {err}");
    let err = parse(
        br#"{"fields": {"temperature": 21.5}}"#,
        &PayloadParams::default(),
        NOW,
    )
    .unwrap_err();
    assert_eq!(err.unselected(), Some("fields"));
    assert!(err.to_string().contains("\"/fields/<name>\""), "{err}");
}

#[test]
fn overflow_error_names_the_key() {
    let params = PayloadParams::default();
    let err = parse(br#"{"ts": 1700000000, "big": -1e400}"#, &params, NOW);
    assert_eq!(err, Err(PayloadError::NotFinite { field: "big".into() }));
}

#[test]
fn error_messages_name_field_and_value() {
    let err = parse(
        br#"{"ts": 1700000000000, "a": 1}"#,
        &PayloadParams {
            timestamp_unit: EpochUnit::S,
            ..PayloadParams::default()
        },
        NOW,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("1700000000000"), "{err}");
}

fn all_formats() -> impl Strategy<Value = PayloadParams> {
    prop_oneof![
        Just(PayloadFormat::Json),
        Just(PayloadFormat::Number),
        Just(PayloadFormat::Senml)
    ]
    .prop_map(build_params)
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        p in all_formats(),
    ) {
        let _ = parse(&bytes, &p, NOW);
    }

    #[test]
    fn parse_never_panics_on_json_ish_text(
        text in r#"[\[\]{}",:0-9eE.+\- a-z]{0,80}"#,
        p in all_formats(),
    ) {
        let _ = parse(text.as_bytes(), &p, NOW);
    }

    #[test]
    fn parsed_values_are_finite_and_channels_nonempty(
        ts in 1.0e9f64..1.7e9, a in -1e300f64..1e300, b in any::<i64>(),
    ) {
        let text = format!(r#"{{"ts": {ts}, "b": {b}, "a": {a}}}"#);
        let params = PayloadParams::default();
        let out = parse(text.as_bytes(), &params, NOW).unwrap();
        prop_assert_eq!(out.len(), 1);
        prop_assert_eq!(out[0].channels[0].0.as_ref(), "a");
        prop_assert!(out[0].channels.iter().all(|(_, v)| v.is_finite()));
    }
}
