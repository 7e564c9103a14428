//! The request context: condition keys and their values as known when the
//! request arrives, and `${key}` policy variables.

use std::collections::HashMap;

/// Condition keys (case-insensitive) → values. Most keys hold one value;
/// multi-valued ones (tag keys) hold several.
#[derive(Clone, Debug, Default)]
pub struct Context {
    values: HashMap<String, Vec<String>>,
}

impl Context {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.values
            .insert(key.to_ascii_lowercase(), vec![value.into()]);
        self
    }

    pub fn set_many(&mut self, key: &str, values: Vec<String>) -> &mut Self {
        self.values.insert(key.to_ascii_lowercase(), values);
        self
    }

    pub fn get(&self, key: &str) -> Option<&[String]> {
        let found = self.values.get(key);
        match found {
            Some(v) => Some(v.as_slice()),
            None if key.bytes().any(|b| b.is_ascii_uppercase()) => self
                .values
                .get(&key.to_ascii_lowercase())
                .map(Vec::as_slice),
            None => None,
        }
    }

    /// The single value of a key.
    pub fn one(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| v.first()).map(String::as_str)
    }

    /// Replaces `${aws:username}`-style variables with the key's value, and
    /// `${*}`, `${?}`, `${$}` with the literal character. A variable whose
    /// key is absent stays as written (and so matches nothing real).
    pub fn expand<'a>(&self, s: &'a str) -> std::borrow::Cow<'a, str> {
        if !s.contains("${") {
            return std::borrow::Cow::Borrowed(s);
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                return std::borrow::Cow::Owned(out);
            };
            let name = &after[..end];
            match name {
                "*" | "?" | "$" => out.push_str(name),
                _ => match self.one(&name.to_ascii_lowercase()) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&rest[start..start + 3 + end]),
                },
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        std::borrow::Cow::Owned(out)
    }
}
