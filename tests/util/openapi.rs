//! Test-only helper: validates `serde_json::Value`s against the schemas of third-party
//! OpenAPI 3.0 / 3.1 documents (the provider files under `shared/providers/openapi/`).
//!
//! How it works:
//! * The YAML file is parsed once (serde-saphyr) into a `serde_json::Value`.
//! * Every schema in it is rewritten into plain JSON Schema 2020-12 (see [`convert_schema`]):
//!   OpenAPI 3.0 `nullable`, boolean `exclusiveMinimum`/`exclusiveMaximum`, `discriminator`
//!   mappings, `readOnly`/`writeOnly` in `required`, and optionally a strict "no undeclared
//!   properties" mode.
//! * The whole converted document is registered as ONE resource (`urn:callvault:openapi`) in a
//!   prepared `jsonschema::Registry`, so every internal `$ref: '#/components/schemas/X'`
//!   resolves against it unchanged. A target is validated through a one-line wrapper schema
//!   `{"$ref": "urn:callvault:openapi#/components/schemas/X"}`.
//! * Parsed documents and compiled validators are cached process-wide, so validating many
//!   instances costs one parse + one compile per (file, target).
//!
//! Unknown `format`s (`int32`, `double`, `binary`, `enum`, `ipv4-cidr`, ...), `x-` extensions,
//! `example`, `discriminator` and `readOnly` are annotations to the validator and never fail.
//! Known formats (`date-time`, `date`, `time`, `uuid`, `uri`, `email`, ...) are asserted unless
//! [`Mode::formats`] is off.
//!
//! Misuse (missing file, unknown component, unknown operation) panics with a clear message:
//! that is a bug in the test, not a finding about the instance.

// A shared test helper: not every test binary that includes it uses every item.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{Draft, JsonType, Registry, ValidationError, Validator};
use serde_json::{json, Map, Value};

/// URI under which a converted OpenAPI document is registered (one registry per document).
const BASE_URI: &str = "urn:callvault:openapi";

/// Longest rendering of one error line; big instances are cut (the path says where to look).
const MAX_LINE: usize = 400;

/// Which side of the wire an instance comes from; decides how `readOnly` / `writeOnly`
/// properties listed in `required` are treated (OpenAPI: a `readOnly` property is required
/// only in responses, a `writeOnly` one only in requests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// A body the provider sends (what the simulator produces): `writeOnly` is not required.
    Response,
    /// A body a client sends: `readOnly` is not required.
    Request,
}

/// How to validate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mode {
    pub direction: Direction,
    /// Reject properties that the schema does not declare: adds `unevaluatedProperties: false`
    /// to every schema that has `properties` and says nothing about additional ones. Off by
    /// default, because the provider files are third-party and real payloads carry extra fields.
    /// Caveat: a schema that has its own `properties` AND pulls more in through `allOf` would
    /// reject the parent's properties inside the `allOf` branch; none of the three provider
    /// files has that shape.
    pub strict: bool,
    /// Assert the formats `jsonschema` knows (`date-time`, `uuid`, `uri`, ...). Unknown formats
    /// are ignored either way.
    pub formats: bool,
}

impl Mode {
    pub const RESPONSE: Mode = Mode {
        direction: Direction::Response,
        strict: false,
        formats: true,
    };
    pub const REQUEST: Mode = Mode {
        direction: Direction::Request,
        strict: false,
        formats: true,
    };

    #[must_use]
    pub fn strict(self) -> Self {
        Mode {
            strict: true,
            ..self
        }
    }

    #[must_use]
    pub fn without_formats(self) -> Self {
        Mode {
            formats: false,
            ..self
        }
    }
}

impl Default for Mode {
    fn default() -> Self {
        Mode::RESPONSE
    }
}

/// What in the document to validate against.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// `#/components/schemas/<name>`.
    Component(&'a str),
    /// The JSON body schema of `paths.<path>.<method>.responses.<status>` (status falls back to
    /// `2XX`-style ranges, then `default`). `$ref`s to `components/responses` are followed.
    Response {
        path: &'a str,
        method: &'a str,
        status: &'a str,
    },
    /// The JSON body schema of `paths.<path>.<method>.requestBody`.
    RequestBody { path: &'a str, method: &'a str },
}

/// Validates `instance` against `#/components/schemas/<component>` of the OpenAPI file at
/// `spec_path`, as a response body. Returns the validation errors (path + message), empty when
/// valid.
#[must_use]
pub fn validate(spec_path: &Path, component: &str, instance: &Value) -> Vec<String> {
    validate_with(
        spec_path,
        Target::Component(component),
        Mode::RESPONSE,
        instance,
    )
}

/// Validates `instance` against the JSON response schema of an operation, e.g.
/// `("/agents/calls", "get", "200")`. Works for inline schemas as well as `$ref`s.
#[must_use]
pub fn validate_response(
    spec_path: &Path,
    path: &str,
    method: &str,
    status: &str,
    instance: &Value,
) -> Vec<String> {
    validate_with(
        spec_path,
        Target::Response {
            path,
            method,
            status,
        },
        Mode::RESPONSE,
        instance,
    )
}

/// The general form of [`validate`] and [`validate_response`].
///
/// # Panics
///
/// On misuse, not on invalid instances: the file is missing or is not OpenAPI 3.0/3.1, the
/// component or operation does not exist, or the schema does not compile.
#[must_use]
pub fn validate_with(
    spec_path: &Path,
    target: Target<'_>,
    mode: Mode,
    instance: &Value,
) -> Vec<String> {
    let validator = Spec::cached(spec_path, mode).validator(target, mode.formats);
    validator
        .iter_errors(instance)
        .map(|error| render(&error))
        .collect()
}

/// Panics, listing every error, unless `instance` is valid.
///
/// # Panics
///
/// When `instance` is invalid, and on misuse as described for [`validate_with`].
#[track_caller]
pub fn assert_valid(spec_path: &Path, target: Target<'_>, mode: Mode, instance: &Value) {
    let errors = validate_with(spec_path, target, mode, instance);
    assert!(
        errors.is_empty(),
        "{} errors validating against {target:?} of {}:\n{}",
        errors.len(),
        spec_path.display(),
        errors.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Cache

/// One converted document, its prepared registry and the validators compiled from it.
struct Spec {
    file: PathBuf,
    doc: Arc<Value>,
    registry: Registry<'static>,
    validators: Mutex<HashMap<(String, bool), Arc<Validator>>>,
}

type SpecKey = (PathBuf, Direction, bool);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking test must not poison the cache for the others.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Spec {
    fn cached(spec_path: &Path, mode: Mode) -> Arc<Spec> {
        static SPECS: OnceLock<Mutex<HashMap<SpecKey, Arc<Spec>>>> = OnceLock::new();
        let file = spec_path
            .canonicalize()
            .unwrap_or_else(|e| panic!("OpenAPI file {}: {e}", spec_path.display()));
        let key = (file, mode.direction, mode.strict);
        // Held while loading: concurrent tests wait for one parse instead of doing several.
        let mut specs = lock(SPECS.get_or_init(Mutex::default));
        if let Some(spec) = specs.get(&key) {
            return Arc::clone(spec);
        }
        let spec = Arc::new(Spec::load(&key.0, mode));
        specs.insert(key, Arc::clone(&spec));
        spec
    }

    fn load(file: &Path, mode: Mode) -> Spec {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("cannot read OpenAPI file {}: {e}", file.display()));
        let mut doc: Value = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("cannot parse OpenAPI file {}: {e}", file.display()));
        let version = doc
            .get("openapi")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        assert!(
            version.starts_with("3.0") || version.starts_with("3.1"),
            "{}: unsupported `openapi: {version}` (3.0.x and 3.1.x are)",
            file.display()
        );
        let ctx = Ctx {
            oas30: version.starts_with("3.0"),
            mode,
        };
        walk_document(&mut doc, &ctx);
        let doc = Arc::new(doc);
        let registry = Registry::new()
            .draft(Draft::Draft202012)
            .add(BASE_URI, Arc::clone(&doc))
            .and_then(jsonschema::RegistryBuilder::prepare)
            .unwrap_or_else(|e| panic!("{}: cannot register the document: {e}", file.display()));
        Spec {
            file: file.to_owned(),
            doc,
            registry,
            validators: Mutex::default(),
        }
    }

    fn validator(&self, target: Target<'_>, formats: bool) -> Arc<Validator> {
        let pointer = self.pointer(target);
        let key = (pointer, formats);
        if let Some(validator) = lock(&self.validators).get(&key) {
            return Arc::clone(validator);
        }
        let wrapper = json!({ "$ref": format!("{BASE_URI}#{}", fragment_encode(&key.0)) });
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_registry(&self.registry)
            .offline()
            .should_validate_formats(formats)
            .should_ignore_unknown_formats(true)
            .build(&wrapper)
            .unwrap_or_else(|e| {
                panic!(
                    "{}: cannot compile the schema at {}: {e}",
                    self.file.display(),
                    key.0
                )
            });
        let validator = Arc::new(validator);
        lock(&self.validators).insert(key, Arc::clone(&validator));
        validator
    }

    /// The JSON pointer (unencoded, `/`-separated, `~`-escaped) of the target's schema.
    fn pointer(&self, target: Target<'_>) -> String {
        match target {
            Target::Component(name) => {
                let pointer = format!("/components/schemas/{}", escape(name));
                if self.doc.pointer(&pointer).is_none() {
                    // Suggest names sharing a word with the one asked for, else list them all.
                    let names: Vec<&String> = self
                        .doc
                        .pointer("/components/schemas")
                        .and_then(Value::as_object)
                        .map(|schemas| schemas.keys().collect())
                        .unwrap_or_default();
                    let wanted = name.to_ascii_lowercase();
                    let close: Vec<&&String> = names
                        .iter()
                        .filter(|known| {
                            let known = known.to_ascii_lowercase();
                            known.contains(&wanted) || wanted.contains(&known)
                        })
                        .collect();
                    let hint = if close.is_empty() {
                        format!("{names:?}")
                    } else {
                        format!("{close:?}")
                    };
                    panic!(
                        "{}: no component schema {name:?}; try one of {hint}",
                        self.file.display()
                    );
                }
                pointer
            }
            Target::Response {
                path,
                method,
                status,
            } => {
                let op = self.operation(path, method);
                let responses = format!("{op}/responses");
                let range = format!("{}XX", status.get(..1).unwrap_or_default());
                let response = [status, range.as_str(), "default"]
                    .iter()
                    .map(|code| format!("{responses}/{}", escape(code)))
                    .find(|pointer| self.doc.pointer(pointer).is_some())
                    .unwrap_or_else(|| {
                        panic!(
                            "{}: {method} {path} has no response {status}",
                            self.file.display()
                        )
                    });
                self.body_schema(&response)
            }
            Target::RequestBody { path, method } => {
                let body = format!("{}/requestBody", self.operation(path, method));
                self.body_schema(&body)
            }
        }
    }

    fn operation(&self, path: &str, method: &str) -> String {
        let op = format!("/paths/{}/{}", escape(path), method.to_ascii_lowercase());
        assert!(
            self.doc.pointer(&op).is_some(),
            "{}: no operation {method} {path}",
            self.file.display()
        );
        op
    }

    /// Follows local `$ref`s from a response / request-body object, then picks the JSON media
    /// type (`application/json`, else any `*json*`) and returns the pointer of its schema.
    fn body_schema(&self, pointer: &str) -> String {
        let mut pointer = pointer.to_owned();
        for _ in 0..16 {
            let object = &self.doc.pointer(&pointer).unwrap_or(&Value::Null);
            let Some(reference) = object.get("$ref").and_then(Value::as_str) else {
                break;
            };
            pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{}: non-local $ref {reference}", self.file.display()))
                .to_owned();
        }
        let content = self
            .doc
            .pointer(&format!("{pointer}/content"))
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("{}: {pointer} has no content", self.file.display()));
        let media = if content.contains_key("application/json") {
            "application/json"
        } else {
            content
                .keys()
                .map(String::as_str)
                .find(|media| media.contains("json"))
                .unwrap_or_else(|| {
                    panic!(
                        "{}: {pointer} has no JSON content: {:?}",
                        self.file.display(),
                        content.keys()
                    )
                })
        };
        let schema = format!("{pointer}/content/{}/schema", escape(media));
        assert!(
            self.doc.pointer(&schema).is_some(),
            "{}: {schema} is missing",
            self.file.display()
        );
        schema
    }
}

/// JSON-pointer escaping of one reference token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Percent-encodes what may not stand in a URI fragment (`{`, `}`, spaces, ...), so that
/// pointers such as `/paths/~1agents~1{agent_id}/...` survive URI parsing.
fn fragment_encode(pointer: &str) -> String {
    let mut out = String::with_capacity(pointer.len());
    for byte in pointer.bytes() {
        let keep = byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&byte);
        if keep {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// OpenAPI -> JSON Schema 2020-12

struct Ctx {
    /// OpenAPI 3.0.x: its Schema Object is a JSON-Schema-draft-4-ish dialect.
    oas30: bool,
    mode: Mode,
}

/// Walks the non-schema parts of the document and converts every schema found under a
/// `schema` key (parameters, media types, headers) or in a `schemas` map (components).
fn walk_document(value: &mut Value, ctx: &Ctx) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match key.as_str() {
                    "schema" => convert_schema(child, ctx),
                    "schemas" => {
                        if let Value::Object(schemas) = child {
                            for schema in schemas.values_mut() {
                                convert_schema(schema, ctx);
                            }
                        }
                    }
                    "example" | "examples" => {}
                    key if key.starts_with("x-") => {}
                    _ => walk_document(child, ctx),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk_document(item, ctx);
            }
        }
        _ => {}
    }
}

/// Rewrites one schema (and, first, its subschemas) into JSON Schema 2020-12.
fn convert_schema(schema: &mut Value, ctx: &Ctx) {
    let Value::Object(map) = schema else { return };

    // Before the children are touched, so their readOnly / writeOnly are as written.
    filter_required(map, ctx.mode.direction);

    for (key, child) in map.iter_mut() {
        match key.as_str() {
            "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
                if let Value::Object(children) = child {
                    for child in children.values_mut() {
                        convert_schema(child, ctx);
                    }
                }
            }
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                if let Value::Array(children) = child {
                    for child in children {
                        convert_schema(child, ctx);
                    }
                }
            }
            "items"
            | "additionalItems"
            | "additionalProperties"
            | "unevaluatedItems"
            | "unevaluatedProperties"
            | "not"
            | "if"
            | "then"
            | "else"
            | "contains"
            | "propertyNames" => match child {
                Value::Array(children) => {
                    for child in children {
                        convert_schema(child, ctx);
                    }
                }
                _ => convert_schema(child, ctx),
            },
            _ => {}
        }
    }

    rewrite_discriminator(map);

    if ctx.mode.strict
        && map.contains_key("properties")
        && !map.contains_key("additionalProperties")
        && !map.contains_key("unevaluatedProperties")
    {
        map.insert("unevaluatedProperties".into(), Value::Bool(false));
    }

    if ctx.oas30 {
        // 3.0 (draft 4): `exclusiveMinimum: true` qualifies `minimum`; 2020-12 wants a number.
        for (exclusive, bound) in [
            ("exclusiveMinimum", "minimum"),
            ("exclusiveMaximum", "maximum"),
        ] {
            if let Some(Value::Bool(is_exclusive)) = map.get(exclusive) {
                let is_exclusive = *is_exclusive;
                map.remove(exclusive);
                if is_exclusive {
                    if let Some(limit) = map.remove(bound) {
                        map.insert(exclusive.into(), limit);
                    }
                }
            }
        }
        if map.remove("nullable") == Some(Value::Bool(true)) {
            make_nullable(schema);
        }
    }
}

/// Drops from `required` the properties this direction never carries.
fn filter_required(map: &mut Map<String, Value>, direction: Direction) {
    let flag = match direction {
        Direction::Response => "writeOnly",
        Direction::Request => "readOnly",
    };
    let Some(Value::Object(properties)) = map.get("properties") else {
        return;
    };
    let skipped: Vec<String> = properties
        .iter()
        .filter(|(_, property)| property.get(flag) == Some(&Value::Bool(true)))
        .map(|(name, _)| name.clone())
        .collect();
    if skipped.is_empty() {
        return;
    }
    if let Some(Value::Array(required)) = map.get_mut("required") {
        required.retain(|name| {
            !name
                .as_str()
                .is_some_and(|name| skipped.iter().any(|s| s == name))
        });
    }
}

/// OpenAPI 3.0 `nullable: true` -> 2020-12. A plain typed schema gets `null` added to `type`
/// (and to `enum`), which keeps error messages precise; anything with `$ref`, a combinator or
/// `const` is wrapped as `anyOf: [<schema>, {type: null}]` (not `oneOf`: Ultravox's
/// `nullable + oneOf: [XEnum, NullEnum]` would then match null twice).
fn make_nullable(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    let composite = ["$ref", "allOf", "anyOf", "oneOf", "not", "const"]
        .iter()
        .any(|key| map.contains_key(*key));
    if composite {
        let inner = std::mem::take(schema);
        *schema = json!({ "anyOf": [inner, { "type": "null" }] });
        return;
    }
    match map.get_mut("type") {
        Some(Value::String(single)) => {
            let single = std::mem::take(single);
            map.insert("type".into(), json!([single, "null"]));
        }
        Some(Value::Array(types)) if !types.contains(&json!("null")) => types.push(json!("null")),
        _ => {}
    }
    if let Some(Value::Array(options)) = map.get_mut("enum") {
        if !options.contains(&Value::Null) {
            options.push(Value::Null);
        }
    }
}

/// `discriminator` with an explicit `mapping` over a `oneOf`/`anyOf` of `$ref`s becomes a
/// dispatch on the property value: errors then come from the selected variant instead of
/// "not valid under any of the schemas listed in the 'oneOf' keyword". Without a mapping (or
/// when the mapping does not cover every variant) the combinator is left as written: it is
/// still correct as long as the variants are disjoint, which they are in the provider files.
fn rewrite_discriminator(map: &mut Map<String, Value>) {
    let Some(Value::Object(discriminator)) = map.get("discriminator") else {
        return;
    };
    let Some(property) = discriminator.get("propertyName").and_then(Value::as_str) else {
        return;
    };
    let Some(Value::Object(mapping)) = discriminator.get("mapping") else {
        return;
    };
    let mapping: Vec<(String, String)> = mapping
        .iter()
        .filter_map(|(value, target)| {
            let target = target.as_str()?;
            let target = if target.contains('/') {
                target.to_owned()
            } else {
                format!("#/components/schemas/{target}")
            };
            Some((value.clone(), target))
        })
        .collect();
    let Some((combinator, variants)) = ["oneOf", "anyOf"].iter().find_map(|key| {
        map.get(*key)
            .and_then(Value::as_array)
            .map(|variants| (*key, variants))
    }) else {
        return;
    };
    let covered = !mapping.is_empty()
        && variants.iter().all(|variant| {
            variant
                .get("$ref")
                .and_then(Value::as_str)
                .is_some_and(|reference| mapping.iter().any(|(_, target)| target == reference))
        });
    if !covered {
        return;
    }
    let property = property.to_owned();
    map.remove(combinator);
    let values: Vec<&String> = mapping.iter().map(|(value, _)| value).collect();
    let mut branches = vec![json!({
        "type": "object",
        "required": [property],
        "properties": { &property: { "enum": values } },
    })];
    for (value, target) in &mapping {
        branches.push(json!({
            "if": { "required": [property], "properties": { &property: { "const": value } } },
            "then": { "$ref": target },
        }));
    }
    match map.get_mut("allOf") {
        Some(Value::Array(all_of)) => all_of.extend(branches),
        _ => {
            map.insert("allOf".into(), Value::Array(branches));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Error rendering

/// `"<instance path>: <message> (schema <schema path>)"`; for `anyOf`/`oneOf` the errors of each
/// branch follow on indented lines (the synthetic `null` branch of a nullable is left out).
fn render(error: &ValidationError<'_>) -> String {
    let mut out = String::new();
    render_into(error, 0, &mut out);
    out
}

fn render_into(error: &ValidationError<'_>, depth: usize, out: &mut String) {
    let indent = "    ".repeat(depth);
    let path = match error.instance_path().as_str() {
        "" => "/",
        path => path,
    };
    let branches = match error.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            Some(context)
        }
        _ => None,
    };
    let message = if branches.is_some() {
        error.masked_with("value").to_string()
    } else {
        error.to_string()
    };
    let mut line = format!("{indent}{path}: {message} (schema {})", error.schema_path());
    if line.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&line);
    for (index, branch) in branches.into_iter().flatten().enumerate() {
        if branch.iter().all(is_null_type_error) {
            continue;
        }
        let _ = write!(out, "\n{indent}  branch {index}:");
        for inner in branch {
            render_into(inner, depth + 1, out);
        }
    }
}

fn is_null_type_error(error: &ValidationError<'_>) -> bool {
    matches!(
        error.kind(),
        ValidationErrorKind::Type {
            kind: TypeKind::Single(JsonType::Null)
        }
    )
}

// ---------------------------------------------------------------------------------------------
