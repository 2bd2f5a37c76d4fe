//! Connector definitions are data: one JSON file per connector under `definitions/`
//! (schema `schemas/connector-definition.schema.json`), embedded in the binary. A
//! definition names the driver that does the protocol work, the form's fields (which part
//! of them the auth config holds, which the end user's connection holds as its sealed
//! credentials) and which fields the driver's test uses. Values are checked here against
//! the definition before anything is stored or any connection is attempted.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Database,
    MessageBroker,
    FileStorage,
}

/// Which side holds a field's value: the auth config (shared by every connection made from
/// it) or each connection's credentials (sealed; every secret is one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    Config,
    Credentials,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// One line of text.
    String,
    /// Several lines (a PEM certificate).
    Text,
    /// A host name or an address (judged by the destination policy).
    Host,
    Integer,
    Boolean,
    /// One of `enum`.
    Enum,
    /// An `https://` (or, where the policy allows loopback, `http://`) endpoint.
    Url,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub name: String,
    pub label: String,
    #[serde(default)]
    pub help: Option<String>,
    #[serde(rename = "type")]
    pub kind: FieldType,
    pub part: Part,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default: Option<Value>,
    #[serde(default, rename = "enum")]
    pub choices: Option<Vec<String>>,
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub validation: Validation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// What the driver's test does, in words (`SELECT 1`, `PING`, …).
    pub operation: String,
    /// The fields the test reads.
    pub uses: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub id: String,
    pub name: String,
    pub category: Category,
    pub driver: String,
    #[serde(default)]
    pub docs_url: Option<String>,
    pub fields: Vec<Field>,
    pub test: TestSpec,
}

impl Definition {
    pub fn fields_of(&self, part: Part) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(move |f| f.part == part)
    }
}

macro_rules! definition_files {
    ($($name:literal),* $(,)?) => {
        /// The raw data files, by name (also read by the schema test).
        pub const FILES: &[(&str, &str)] = &[
            $(($name, include_str!(concat!("definitions/", $name, ".json")))),*
        ];
    };
}

definition_files!(
    "aiven_mysql",
    "aiven_postgres",
    "alloydb",
    "amazon_aurora_mysql",
    "amazon_aurora_postgres",
    "amazon_elasticache",
    "amazon_mq",
    "amazon_rds_mysql",
    "amazon_rds_postgres",
    "amazon_redshift",
    "amazon_s3",
    "aws_transfer_family",
    "azure_blob_sftp",
    "azure_database_mysql",
    "azure_database_postgres",
    "backblaze_b2",
    "ceph_object_gateway",
    "citus",
    "cloudamqp",
    "cloudflare_r2",
    "cockroachdb",
    "crunchy_bridge",
    "digitalocean_mysql",
    "digitalocean_postgres",
    "digitalocean_spaces",
    "dragonfly",
    "gcs_interoperability",
    "google_cloud_sql_mysql",
    "google_cloud_sql_postgres",
    "greenplum",
    "heroku_postgres",
    "hetzner_storage_box",
    "keydb",
    "lavinmq",
    "mariadb",
    "memorystore_redis",
    "minio",
    "mysql",
    "neon",
    "percona_server",
    "planetscale",
    "postgres",
    "rabbitmq",
    "redis",
    "rsync_net",
    "s3_compatible",
    "sftp",
    "singlestore",
    "supabase",
    "tidb",
    "timescaledb",
    "upstash",
    "valkey",
    "vitess",
    "wasabi",
    "yugabytedb",
);

/// Every definition. Files that do not parse are left out and logged (a unit test fails
/// on them, so a release never ships one).
pub fn definitions() -> &'static [Definition] {
    static ALL: OnceLock<Vec<Definition>> = OnceLock::new();
    ALL.get_or_init(|| {
        FILES
            .iter()
            .filter_map(|(name, text)| match serde_json::from_str::<Definition>(text) {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::error!(connector = name, error = %e, "connector definition does not parse");
                    None
                }
            })
            .collect()
    })
}

pub fn definition(id: &str) -> Option<&'static Definition> {
    definitions().iter().find(|d| d.id == id)
}

/// A value refused: the field (a name from the static definition) and why, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub field: &'static str,
    pub reason: String,
}

fn refuse(field: &'static str, reason: impl Into<String>) -> Refusal {
    Refusal {
        field,
        reason: reason.into(),
    }
}

/// Checks `given` against the fields of `part`: no unknown field, every required one
/// present (or defaulted), each of its type and within its validation. Returns the values
/// with defaults filled in. Reasons never quote a value (it may be a secret).
pub fn check(
    definition: &'static Definition,
    part: Part,
    given: &Value,
) -> Result<BTreeMap<String, Value>, Refusal> {
    let part_name = match part {
        Part::Config => "settings",
        Part::Credentials => "credentials",
    };
    let empty = serde_json::Map::new();
    let given = match given {
        Value::Null => &empty,
        Value::Object(m) => m,
        _ => return Err(refuse(part_name, "must be an object")),
    };
    if let Some(unknown) = given
        .keys()
        .find(|k| !definition.fields_of(part).any(|f| &f.name == *k))
    {
        let known: Vec<&str> = definition
            .fields_of(part)
            .map(|f| f.name.as_str())
            .collect();
        // The unknown name is the caller's own text, not a value: naming it is safe enough,
        // but cut it short.
        let shown: String = unknown.chars().take(64).collect();
        return Err(refuse(
            part_name,
            format!("unknown field `{shown}`; expected {}", known.join(", ")),
        ));
    }
    let mut out = BTreeMap::new();
    for field in definition.fields_of(part) {
        let name = field.name.as_str();
        let value = match given.get(name) {
            None | Some(Value::Null) => match &field.default {
                Some(d) => d.clone(),
                None if field.required => return Err(refuse(name, "required")),
                None => continue,
            },
            Some(v) => v.clone(),
        };
        check_value(field, &value).map_err(|reason| refuse(name, reason))?;
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

fn check_value(field: &Field, value: &Value) -> Result<(), String> {
    let v = &field.validation;
    match field.kind {
        FieldType::Integer => {
            let n = value.as_i64().ok_or("must be an integer")?;
            if v.min.is_some_and(|m| n < m) || v.max.is_some_and(|m| n > m) {
                return Err(format!(
                    "must be between {} and {}",
                    v.min.unwrap_or(i64::MIN),
                    v.max.unwrap_or(i64::MAX)
                ));
            }
        }
        FieldType::Boolean => {
            value.as_bool().ok_or("must be true or false")?;
        }
        FieldType::Enum => {
            let s = value.as_str().ok_or("must be a string")?;
            let choices = field.choices.as_deref().unwrap_or_default();
            if !choices.iter().any(|c| c == s) {
                return Err(format!("must be one of {}", choices.join(", ")));
            }
        }
        FieldType::String | FieldType::Text | FieldType::Host | FieldType::Url => {
            let s = value.as_str().ok_or("must be a string")?;
            let max = v.max_length.unwrap_or(8192);
            let min = v.min_length.unwrap_or(usize::from(field.required));
            if s.len() < min || s.len() > max {
                return Err(format!("must be {min}-{max} bytes"));
            }
            if field.kind != FieldType::Text && s.chars().any(char::is_control) {
                return Err("must not contain control characters".into());
            }
        }
    }
    Ok(())
}

/// Reads checked values (the auth config's settings and a connection's credentials
/// together) by the names the driver knows.
pub struct Values<'a> {
    pub settings: &'a BTreeMap<String, Value>,
    pub credentials: &'a BTreeMap<String, Value>,
}

impl Values<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.settings
            .get(name)
            .or_else(|| self.credentials.get(name))
    }
    pub fn str(&self, name: &str) -> &str {
        self.get(name).and_then(Value::as_str).unwrap_or_default()
    }
    pub fn opt_str(&self, name: &str) -> Option<&str> {
        self.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
    pub fn int(&self, name: &str) -> i64 {
        self.get(name).and_then(Value::as_i64).unwrap_or_default()
    }
    pub fn port(&self) -> u16 {
        u16::try_from(self.int("port")).unwrap_or_default()
    }
    pub fn flag(&self, name: &str) -> bool {
        self.get(name).and_then(Value::as_bool).unwrap_or_default()
    }
}

/// A field as a form shows it (the console's and the hosted connect page's templates render
/// these; no HTML here). Inputs are named `f_<field>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormField {
    pub input: String,
    pub label: String,
    pub help: String,
    /// `text`, `password`, `number`, `url`, `select`, `textarea` or `checkbox`.
    pub widget: &'static str,
    pub required: bool,
    /// What the input shows: the value given or kept, else the default; never a secret's.
    pub value: String,
    pub choices: Vec<String>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub max_length: usize,
}

pub const FORM_PREFIX: &str = "f_";

/// The form fields of `part`, filled with `shown` (non-secret values only) or defaults.
pub fn form_fields(
    definition: &Definition,
    part: Part,
    shown: &BTreeMap<String, Value>,
) -> Vec<FormField> {
    definition
        .fields_of(part)
        .map(|f| {
            let value = if f.secret {
                String::new()
            } else {
                match shown.get(&f.name).or(f.default.as_ref()) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(v) => v.to_string(),
                }
            };
            FormField {
                input: format!("{FORM_PREFIX}{}", f.name),
                label: f.label.clone(),
                help: f.help.clone().unwrap_or_default(),
                widget: match f.kind {
                    // A secret key's lines would be lost in a one-line input.
                    FieldType::Text => "textarea",
                    _ if f.secret => "password",
                    FieldType::Integer => "number",
                    FieldType::Boolean => "checkbox",
                    FieldType::Enum => "select",
                    FieldType::Url => "url",
                    FieldType::String | FieldType::Host => "text",
                },
                required: f.required && f.default.is_none() && f.kind != FieldType::Boolean,
                value,
                choices: f.choices.clone().unwrap_or_default(),
                min: f.validation.min,
                max: f.validation.max,
                max_length: f.validation.max_length.unwrap_or(8192),
            }
        })
        .collect()
}

/// A form's `f_<field>` inputs of `part` as the JSON object [`check`] takes: integers
/// parsed (left as text when they do not parse, so the check names the field), a checkbox
/// present as `true`, empty inputs left out (defaults apply).
pub fn from_form(
    definition: &Definition,
    part: Part,
    form: &std::collections::HashMap<String, String>,
) -> Value {
    let mut out = serde_json::Map::new();
    for f in definition.fields_of(part) {
        let given = form.get(&format!("{FORM_PREFIX}{}", f.name));
        let value = match (f.kind, given) {
            (FieldType::Boolean, g) => Value::Bool(g.is_some_and(|v| v == "true" || v == "on")),
            (_, None) => continue,
            (_, Some(v)) if v.trim().is_empty() => continue,
            (FieldType::Integer, Some(v)) => v
                .trim()
                .parse::<i64>()
                .map_or_else(|_| Value::String(v.clone()), Value::from),
            (FieldType::Text | FieldType::String, Some(v)) if f.secret => Value::String(v.clone()),
            (_, Some(v)) => Value::String(v.trim().to_string()),
        };
        out.insert(f.name.clone(), value);
    }
    Value::Object(out)
}

#[cfg(test)]
#[path = "definition_tests.rs"]
mod tests;
