//! Sensor ids in topics: [`render_topic`] fills a template, [`sanitize_topic_level`]
//! maps an id to one topic level injectively.

/// Replaces every `{sensor}` in `template` with [`sanitize_topic_level`]`(sensor)`.
pub fn render_topic(template: &str, sensor: &str) -> String {
    template.replace("{sensor}", &sanitize_topic_level(sensor))
}

/// Longest topic level a sensor id maps to, in bytes. MQTT allows 65,535-byte topics;
/// this keeps topics readable and bounded whatever the sensor ids look like.
pub(super) const MAX_TOPIC_LEVEL_BYTES: usize = 128;

/// Maps a sensor id to one MQTT topic level, injectively: two different ids never
/// share a topic (and so never overwrite each other's retained state).
///
/// `%` itself, the wildcards `+` and `#`, the level separator `/`, control and
/// invisible characters ([`crate::escape::is_invisible`]) and a leading `$` (reserved
/// for broker topics such as `$SYS`, MQTT 3.1.1 §4.7.2) are percent-encoded, one `%XX`
/// per UTF-8 byte; everything else is kept, so ordinary ids (`pump-7.temp`) are their
/// own topic level. The empty id becomes `%`. A level longer than 128 bytes is cut and
/// ends in `%~` plus a 128-bit hash of the whole id ([`crate::escape::encode_bounded`]).
pub fn sanitize_topic_level(s: &str) -> String {
    crate::escape::encode_bounded(s, MAX_TOPIC_LEVEL_BYTES, |i, ch| {
        matches!(ch, '+' | '#' | '/') || crate::escape::is_invisible(ch) || (i == 0 && ch == '$')
    })
}
