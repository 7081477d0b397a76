//! The final single-line JSON summary every benchmark prints last, for scripts to pick up:
//! `{"bench":"<name>", ...}` with `bench` first and the other keys in alphabetical order.

use serde_json::Value;

/// Print `{"bench":<bench>,<fields...>}` on one line; `fields` is a JSON object.
pub fn print(bench: &str, fields: Value) {
    let mut line = format!(r#"{{"bench":{}"#, Value::from(bench));
    if let Value::Object(fields) = fields {
        for (key, value) in fields {
            line.push_str(&format!(",{}:{value}", Value::from(key)));
        }
    }
    line.push('}');
    println!("{line}");
}
