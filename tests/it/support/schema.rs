//! docs/alert.schema.json applied to what the daemon publishes.
//!
//! A small JSON Schema validator for the keywords that file uses (`type`, `enum`,
//! `const`, `required`, `properties`, `additionalProperties: false`, `items`,
//! `minimum`, `maximum`, `minLength`, `maxLength`, `oneOf`, `not`, `if`/`then`/`else`,
//! and local `$ref`s): the `jsonschema` crate would add some forty crates to the
//! build for one test. A keyword it does not know fails the check, so the schema
//! cannot grow past what is checked.

use serde_json::{Map, Value};

/// The schema, parsed.
pub fn alert_schema() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/alert.schema.json");
    let text = std::fs::read_to_string(path).expect("read docs/alert.schema.json");
    serde_json::from_str(&text).expect("docs/alert.schema.json is JSON")
}

/// Panics with every violation when `event` does not match docs/alert.schema.json.
pub fn assert_valid_alert(event: &Value) {
    let errors = validate(&alert_schema(), event);
    assert!(
        errors.is_empty(),
        "alert event violates docs/alert.schema.json: {errors:?}\n{event}"
    );
}

/// Every violation of `schema` by `value`, each with its JSON pointer.
pub fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, schema, value, "", &mut errors);
    errors
}

/// Keywords that only document.
const ANNOTATIONS: [&str; 4] = ["$schema", "title", "description", "$defs"];

fn check(root: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(s) = schema.as_object() else {
        errors.push(format!("{at}: schema is not an object"));
        return;
    };
    for (key, arg) in s {
        match key.as_str() {
            k if ANNOTATIONS.contains(&k) => {}
            "$ref" => check(root, resolve(root, arg), v, at, errors),
            "type" => check_type(arg, v, at, errors),
            "enum" => {
                if !arg.as_array().is_some_and(|a| a.contains(v)) {
                    errors.push(format!("{at}: {v} not in {arg}"));
                }
            }
            "const" if arg != v => errors.push(format!("{at}: {v} is not {arg}")),
            "const" => {}
            "required" => {
                for name in arg.as_array().into_iter().flatten().filter_map(Value::as_str) {
                    if v.is_object() && v.get(name).is_none() {
                        errors.push(format!("{at}: missing {name}"));
                    }
                }
            }
            "properties" => check_properties(root, arg, v, at, errors),
            "additionalProperties" => check_additional(s, arg, v, at, errors),
            "items" => {
                for (i, item) in v.as_array().into_iter().flatten().enumerate() {
                    check(root, arg, item, &format!("{at}/{i}"), errors);
                }
            }
            "minimum" | "maximum" => check_bound(key, arg, v, at, errors),
            "minLength" | "maxLength" => check_length(key, arg, v, at, errors),
            "oneOf" => {
                let branches = arg.as_array().map_or(&[][..], Vec::as_slice);
                let ok = branches.iter().filter(|b| validate_at(root, b, v)).count();
                if ok != 1 {
                    errors.push(format!("{at}: matches {ok} of the oneOf branches, not 1"));
                }
            }
            "not" if validate_at(root, arg, v) => errors.push(format!("{at}: matches `not` {arg}")),
            "not" => {}
            "if" => {
                let branch = if validate_at(root, arg, v) { "then" } else { "else" };
                if let Some(b) = s.get(branch) {
                    check(root, b, v, at, errors);
                }
            }
            "then" | "else" => {}
            other => errors.push(format!(
                "{at}: keyword {other} is not supported by this validator"
            )),
        }
    }
}

fn validate_at(root: &Value, schema: &Value, v: &Value) -> bool {
    let mut errors = Vec::new();
    check(root, schema, v, "", &mut errors);
    errors.is_empty()
}

fn resolve<'a>(root: &'a Value, reference: &Value) -> &'a Value {
    let pointer = reference.as_str().and_then(|r| r.strip_prefix('#')).unwrap_or("");
    root.pointer(pointer)
        .unwrap_or_else(|| panic!("unresolvable $ref {reference}"))
}

fn check_type(arg: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let fits = |t: &str| match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_u64() || v.is_i64(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    };
    let ok = match arg {
        Value::String(t) => fits(t),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(fits),
        _ => false,
    };
    if !ok {
        errors.push(format!("{at}: {v} is not of type {arg}"));
    }
}

fn check_properties(root: &Value, arg: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let (Some(props), Some(obj)) = (arg.as_object(), v.as_object()) else {
        return;
    };
    for (name, sub) in props {
        if let Some(field) = obj.get(name) {
            check(root, sub, field, &format!("{at}/{name}"), errors);
        }
    }
}

fn check_additional(s: &Map<String, Value>, arg: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    assert_eq!(
        arg,
        &Value::Bool(false),
        "only additionalProperties: false is supported"
    );
    let known = s.get("properties").and_then(Value::as_object);
    for name in v.as_object().into_iter().flat_map(Map::keys) {
        if !known.is_some_and(|k| k.contains_key(name)) {
            errors.push(format!("{at}: undocumented field {name}"));
        }
    }
}

fn check_bound(key: &str, arg: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let (Some(bound), Some(x)) = (arg.as_f64(), v.as_f64()) else {
        return;
    };
    if (key == "minimum" && x < bound) || (key == "maximum" && x > bound) {
        errors.push(format!("{at}: {x} violates {key} {bound}"));
    }
}

fn check_length(key: &str, arg: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let (Some(bound), Some(text)) = (arg.as_u64(), v.as_str()) else {
        return;
    };
    let n = text.chars().count() as u64;
    if (key == "minLength" && n < bound) || (key == "maxLength" && n > bound) {
        errors.push(format!("{at}: length {n} violates {key} {bound}"));
    }
}
