use super::*;
use crate::alert::Severity;

fn problems(text: &str) -> Vec<String> {
    match Config::from_toml_str(text) {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(ConfigError::Invalid(p)) => p.iter().map(ToString::to_string).collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn example_file_parses_and_matches_the_defaults() {
    let text = include_str!("../../config/anomalyd.toml");
    let from_file = Config::from_toml_str(text).unwrap();
    let defaults = Config::from_toml_str("").unwrap();
    assert_eq!(from_file, defaults, "config/anomalyd.toml must show the defaults");
    assert_eq!(from_file.detector.threshold.default.quantile.get(), 0.999);
    assert_eq!(from_file.sources[0].topic, "sensors/+/telemetry");
}

#[test]
fn every_unknown_key_is_listed_with_its_dotted_path() {
    let p = problems("[mqtt]\nhots = \"x\"\n[threshold]\nquantle = 0.9\n[nonsense]\na = 1\n");
    for key in ["`mqtt.hots`", "`threshold.quantle`", "`nonsense`"] {
        assert!(p.iter().any(|m| m.contains(key)), "{key} missing from {p:?}");
    }
}

#[test]
fn range_problems_are_collected_in_one_pass() {
    let cases = [
        (
            "threshold.quantile",
            "[threshold]\nquantile = 1.2",
            "must be in (0, 1], got 1.2",
        ),
        ("window.size", "[window]\nsize = 1", "must be at least 2, got 1"),
        (
            "alert.subside",
            "[alert]\nsubside = 1.5",
            "must be in [0, 1), got 1.5",
        ),
        (
            "limits.max_memory_mb",
            "[limits]\nmax_memory_mb = 1\n[training]\nbuffer = 300000",
            "must be 0 (no budget) or hold one sensor",
        ),
        (
            "limits.sensor_idle_secs",
            "[limits]\nsensor_idle_secs = 100000000",
            "must be at most 31622400 (a year), got 100000000",
        ),
        (
            "window.reorder_rows",
            "[window]\nreorder_rows = 5000",
            "must be at most 1024, got 5000",
        ),
        ("model.kind", "[model]\nkind = \"deep\"", "got \"deep\""),
        ("model.pca_components", "[model]\npca_components = 40", "got 40"),
        (
            "training.buffer",
            "[training]\nmin_windows = 500\nbuffer = 100",
            "got 100",
        ),
        (
            "threshold.score",
            "[threshold]\nscore = \"svm\"",
            "must be ae, pca, ae_pca or mean",
        ),
        ("mqtt.protocol", "[mqtt]\nprotocol = 4", "must be 3 or 5, got 4"),
        (
            "alerts.topic",
            "[alerts]\ntopic = \"alerts/#\"",
            "must contain {sensor}",
        ),
        (
            "metrics.listen",
            "[metrics]\nlisten = \"nowhere\"",
            "must be host:port",
        ),
        (
            "threshold.sensors.p1.quantile",
            "[threshold.sensors.p1]\nquantile = 0",
            "got 0",
        ),
        (
            "model.latent",
            "[model]\nkind = \"undercomplete\"\nlatent = 40",
            "latent width must be smaller than the input width 32, got 40",
        ),
        ("model.learning_rate", "[model]\nlearning_rate = -1", "got -1"),
        (
            "model.epochs",
            "[model]\nepochs = 0",
            "epochs must be at least 1, got 0",
        ),
        (
            "alert.trigger",
            "[alert]\ntrigger = \"score\"",
            "was removed: alerts follow the threshold",
        ),
        (
            "training.policy",
            "[training]\npolicy = \"learn_all\"",
            "was removed: [learning] decides",
        ),
        (
            "learning.accept_after_secs",
            "[learning]\naccept_after_secs = -1",
            "must be 0 (never) or a positive number of seconds, got -1",
        ),
        (
            "score.strategy",
            "[score]\nstrategy = \"max\"",
            "must be onset or ratio",
        ),
        (
            "score.history",
            "[score]\nhistory = 0",
            "must be at least 1, got 0",
        ),
        (
            "training.parallel",
            "[training]\nparallel = 0",
            "must be at least 1, got 0",
        ),
        (
            "score.range_margin",
            "[score]\nrange_margin = -0.1",
            "must be a number >= 0",
        ),
        (
            "score.likelihood_tail",
            "[score]\nlikelihood_tail = 0.5",
            "must be a probability in [0, 0.5)",
        ),
        (
            "alert.severity_bands",
            "[alert]\nseverity_bands = [5.0, 2.0]",
            "must be two increasing numbers >= 1 (major, critical bounds of over_by), got [5.0, 2.0]",
        ),
        (
            "alert.severity_bands",
            "[alert]\nseverity_bands = [2.0]",
            "got [2.0]",
        ),
        (
            "alert.stale_after_secs",
            "[alert]\nstale_after_secs = -5",
            "must be 0 (off) or a positive number of seconds, got -5",
        ),
        (
            "homeassistant.prefix",
            "[homeassistant]\nprefix = \"ha/#\"",
            "must be a topic without wildcards or a leading or trailing `/`, got \"ha/#\"",
        ),
        (
            "homeassistant.score_topic",
            "[homeassistant]\nscore_topic = \"scores\"",
            "must contain {sensor}, got \"scores\"",
        ),
        (
            "homeassistant.score_every_secs",
            "[homeassistant]\nscore_every_secs = 0",
            "must be a positive number of seconds, got 0",
        ),
        (
            "alerts.expiry_secs",
            "[alerts]\nexpiry_secs = 4294967296",
            "must be at most 4294967295 (0 = never), got 4294967296",
        ),
        (
            "cluster.instances",
            "[cluster]\ninstances = 0",
            "must be at least 1, got 0",
        ),
        (
            "cluster.index",
            "[cluster]\ninstances = 2\nindex = 2",
            "must be below cluster.instances (2), got 2",
        ),
        (
            "cluster.index",
            "[cluster]\nindex = 1",
            "must be below cluster.instances (1), got 1",
        ),
    ];
    for (key, text, want) in cases {
        let p = problems(text);
        assert!(
            p.iter()
                .any(|m| m.contains(&format!("`{key}`")) && m.contains(want)),
            "{key}: {p:?}"
        );
    }
    let p =
        problems("[window]\nsize = 1\n[threshold]\nquantile = 1.2\nscore = \"svm\"\n[mqtt]\nprotocol = 4\n");
    assert!(p.len() >= 4, "every problem reported at once: {p:?}");
}

#[test]
fn wrong_types_name_the_key() {
    let p = problems("[mqtt]\nport = \"high\"\n");
    assert!(p.iter().any(|m| m.contains("port")), "{p:?}");
}

#[test]
fn per_sensor_overrides_apply_only_to_that_sensor() {
    let cfg = Config::from_toml_str("[threshold.sensors.pump-7]\nquantile = 0.9\nfloor = 2.0\n").unwrap();
    let t = &cfg.detector.threshold;
    assert_eq!(t.for_sensor("pump-7").quantile.get(), 0.9);
    assert_eq!(t.for_sensor("pump-7").floor, 2.0);
    assert_eq!(t.for_sensor("pump-8").quantile.get(), 0.999);
}

#[test]
fn raw_config_round_trips_through_toml() {
    let raw = RawConfig::default();
    let text = toml::to_string(&raw).unwrap();
    let back: RawConfig = toml::from_str(&text).unwrap();
    assert_eq!(raw, back);
}

#[test]
fn ae_pca_score_is_the_mean_of_both_errors() {
    let text = "[threshold]\nscore = \"ae_pca\"";
    let c = Config::from_toml_str(text).unwrap();
    let s = crate::model::WindowScores {
        ae: 1.0,
        pca: 3.0,
        mean: 10.0,
    };
    assert_eq!(c.detector.threshold.score.pick(&s), 2.0);
}

#[test]
fn the_skab_config_is_the_defaults_but_for_training() {
    let mut skab = Config::from_toml_str(include_str!("../../config/skab.toml")).unwrap();
    let defaults = Config::from_toml_str("").unwrap();
    assert_ne!(skab.detector.training, defaults.detector.training);
    skab.detector.training = defaults.detector.training.clone();
    assert_eq!(
        skab, defaults,
        "config/skab.toml may differ from the defaults only in [training]"
    );
}

/// The two shipped files read alike too: every section but `[training]`, comments
/// included, after each file's opening comment.
#[test]
fn the_skab_config_has_the_shipped_text_but_for_training() {
    fn body(text: &str) -> Vec<&str> {
        let mut in_training = false;
        (text.lines())
            .skip_while(|l| l.starts_with('#'))
            .filter(|l| {
                if l.starts_with('[') {
                    in_training = l.starts_with("[training]");
                }
                !in_training
            })
            .collect()
    }
    let shipped = body(include_str!("../../config/anomalyd.toml"));
    let skab = body(include_str!("../../config/skab.toml"));
    for (line, (a, b)) in shipped.iter().zip(&skab).enumerate() {
        assert_eq!(a, b, "line {line} after the opening comment differs");
    }
    assert_eq!(shipped.len(), skab.len());
}

#[test]
fn removed_keys_say_what_replaced_them() {
    for (text, want) in [
        (
            "[threshold]\nlearn_flagged = false",
            "`threshold.learn_flagged` was removed: [learning]",
        ),
        ("[score]\nreseed = true", "`score.reseed` was removed"),
        (
            "[alert]\nanomaly_threshold = 0.5",
            "`alert.anomaly_threshold` was removed",
        ),
    ] {
        let p = problems(text);
        assert!(p.iter().any(|m| m.contains(want)), "{want}: {p:?}");
    }
}

#[test]
fn alert_keys_become_checked_values_and_default_to_off() {
    let c = Config::from_toml_str(
        "[alert]\nseverity_bands = [1.5, 3.0]\nstale_after_secs = 90\n[alerts]\nexpiry_secs = 600\n",
    )
    .unwrap();
    assert_eq!(c.stale_after, Some(Duration::from_secs(90)));
    assert_eq!(c.alert_expiry, Some(Duration::from_secs(600)));
    let bands = c.detector.alert.severity;
    assert_eq!(
        [1.4, 1.5, 3.0].map(|x| bands.classify(x)),
        [Severity::Minor, Severity::Major, Severity::Critical]
    );
    let d = Config::from_toml_str("").unwrap();
    assert_eq!((d.stale_after, d.alert_expiry), (None, None));
    assert_eq!(d.detector.alert.severity, crate::alert::SeverityBands::default());
}

#[test]
fn a_clustered_instance_gets_its_own_client_id_and_status_topic() {
    let text = "[mqtt]\nclient_id = \"gw\"\n[alerts]\nstatus_topic = \"site/status\"\n[cluster]\ninstances = 3\nindex = 2\n";
    let c = Config::from_toml_str(text).unwrap();
    assert_eq!((c.cluster.instances(), c.cluster.index()), (3, 2));
    assert_eq!(c.mqtt.client_id, "gw-2");
    assert_eq!(c.alerts.status_topic, "site/status/2");
    let single = Config::from_toml_str("").unwrap();
    assert_eq!(single.mqtt.client_id, "anomalyd");
    assert_eq!(single.alerts.status_topic, "anomalyd/status");
    assert!(single.cluster.is_single());
}

#[test]
fn timestamp_unit_is_read_and_an_unknown_one_is_refused_by_name() {
    let c = Config::from_toml_str("[[sources]]\ntopic = \"a/+/t\"\ntimestamp_unit = \"ms\"\n").unwrap();
    assert_eq!(c.sources[0].timestamp_unit, crate::reading::EpochUnit::Ms);
    let d = Config::from_toml_str("").unwrap();
    assert_eq!(d.sources[0].timestamp_unit, crate::reading::EpochUnit::Auto);
    let err = Config::from_toml_str("[[sources]]\ntopic = \"a/+/t\"\ntimestamp_unit = \"sec\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("timestamp_unit") && err.contains("sec"), "{err}");
}

#[test]
fn source_fields_hold_and_channel_level_are_checked_with_their_keys() {
    let cases = [
        (
            "sources[0].hold_secs",
            "hold_secs = -1",
            "must be 0 (same time only) to 86400 seconds, got -1",
        ),
        (
            "sources[0].channels",
            "channels = [\"/fields/\"]",
            "must end with a field name, got \"/fields/\"",
        ),
        (
            "sources[0].timestamp_field",
            "timestamp_field = \"/a~2\"",
            "`~` must be followed by 0 or 1",
        ),
        (
            "sources[0].sensor_field",
            "sensor_field = \"\"",
            "must name a field",
        ),
        (
            "sources[0].channels",
            "channels = [\"/fields/t\", \"/tags/t\"]",
            "must name distinct channels: \"/fields/t\" and \"/tags/t\" are both \"t\"",
        ),
        (
            "sources[0].channels",
            "format = \"senml\"\nchannels = [\"/a/b\"]",
            "JSON pointers apply to format = \"json\" only",
        ),
        (
            "sources[0].channel_level",
            "channel_level = 2",
            "applies to format = \"number\" only",
        ),
        (
            "sources[0].channel_level",
            "format = \"number\"\nchannel_level = 3\nchannels = [\"a\"]",
            "must be below the topic's 3 levels, got 3",
        ),
        (
            "sources[0].channels",
            "format = \"number\"\nchannel_level = 2",
            "must list the channels when channel_level is set",
        ),
    ];
    for (key, source, want) in cases {
        let p = problems(&format!("[[sources]]\ntopic = \"s/+/+\"\n{source}\n"));
        assert!(
            p.iter()
                .any(|m| m.contains(&format!("`{key}`")) && m.contains(want)),
            "{key}: {p:?}"
        );
    }
    let ok = Config::from_toml_str(
        "[[sources]]\ntopic = \"s/+/+\"\nformat = \"number\"\nchannel_level = 2\nchannels = [\"t\", \"v\"]\nhold_secs = 0\n\
         [[sources]]\ntopic = \"telegraf/+\"\ntimestamp_field = \"/timestamp\"\nchannels = [\"/fields/a~1b\"]\n",
    )
    .expect("valid sources");
    assert_eq!(ok.sources[0].channel_level, Some(2));
    assert_eq!(ok.sources[0].hold_secs, 0.0);
    assert_eq!(Config::from_toml_str("").unwrap().sources[0].hold_secs, 60.0);
}

#[test]
fn skip_and_margin_are_read_and_bad_values_are_refused_by_name() {
    use crate::config::Skip;
    let d = Config::from_toml_str("").unwrap().detector;
    assert_eq!(d.model.skip, Skip::Auto);
    assert!(d.model.skip.applies(2) && !d.model.skip.applies(1));
    assert!((d.threshold.margin - 1.333).abs() < 1e-12);
    let c = Config::from_toml_str("[model]\nskip = \"none\"\n[threshold]\nmargin = 1.0\n")
        .unwrap()
        .detector;
    assert!(!c.model.skip.applies(8));
    assert_eq!(c.threshold.margin, 1.0);
    let p = problems("[model]\nskip = \"linear\"\n[threshold]\nmargin = 0.9\n");
    assert!(
        p.iter().any(|m| m.contains("model.skip") && m.contains("linear")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.contains("threshold.margin") && m.contains("0.9")),
        "{p:?}"
    );
}
