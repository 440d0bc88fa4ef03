//! How one key's value travels: from text (environment, flags, the key
//! table's defaults) to TOML, and from TOML to its typed Rust value.
//!
//! Every key goes through the same two steps whatever its source, so a value
//! is accepted from a flag exactly when it would be accepted from the file.

use std::net::SocketAddr;

use toml::Value;

/// How a key is written as text (`SECKILL_*` variables, `--set`, defaults)
/// and whether it is shown by `--print-config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true` or `false`.
    Bool,
    /// A whole number, never negative.
    Integer,
    /// Any text; typed keys (addresses, URLs, modes) parse it further.
    String,
    /// A list of strings: a TOML array in the file, comma-separated as text.
    List,
    /// Text that `--print-config` and `Debug` never show.
    Secret,
}

impl Kind {
    /// Turns the text of an environment variable, a flag or a default into
    /// the TOML value a file would have held.
    pub fn parse_text(self, text: &str) -> Result<Value, String> {
        match self {
            Kind::Bool => match text {
                "true" => Ok(Value::Boolean(true)),
                "false" => Ok(Value::Boolean(false)),
                _ => Err(format!("{text:?} is not true or false")),
            },
            Kind::Integer => text
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(Value::Integer)
                .ok_or_else(|| format!("{text:?} is not a whole number")),
            Kind::String | Kind::Secret => Ok(Value::String(text.to_owned())),
            Kind::List => Ok(Value::Array(
                text.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| Value::String(item.to_owned()))
                    .collect(),
            )),
        }
    }
}

/// A type a configuration key can have.
pub trait ConfigValue: Sized {
    const KIND: Kind;
    /// Parses the merged value of the key.
    fn from_toml(value: &Value) -> Result<Self, String>;
    /// Called when no layer set the key; only optional keys accept it.
    fn absent() -> Result<Self, String> {
        Err("is required".to_owned())
    }
    /// The value as it would be written in the file (`None`: left out).
    fn to_toml(&self) -> Option<Value>;
    /// As [`ConfigValue::to_toml`], with secrets replaced by `<redacted>`.
    fn to_toml_redacted(&self) -> Option<Value> {
        self.to_toml()
    }
}

/// What a file value is, for messages: `a string "abc"`.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("a string {s:?}"),
        Value::Integer(n) => format!("the number {n}"),
        Value::Float(x) => format!("the number {x}"),
        Value::Boolean(b) => format!("the boolean {b}"),
        Value::Datetime(d) => format!("the date {d}"),
        Value::Array(_) => "a list".to_owned(),
        Value::Table(_) => "a table".to_owned(),
    }
}

pub(crate) fn expect_str(value: &Value) -> Result<&str, String> {
    value.as_str().ok_or_else(|| format!("expected a string, found {}", describe(value)))
}

impl ConfigValue for bool {
    const KIND: Kind = Kind::Bool;
    fn from_toml(value: &Value) -> Result<Self, String> {
        value.as_bool().ok_or_else(|| format!("expected true or false, found {}", describe(value)))
    }
    fn to_toml(&self) -> Option<Value> {
        Some(Value::Boolean(*self))
    }
}

impl ConfigValue for u64 {
    const KIND: Kind = Kind::Integer;
    fn from_toml(value: &Value) -> Result<Self, String> {
        match value {
            Value::Integer(n) => u64::try_from(*n).map_err(|_| format!("{n} is negative")),
            Value::String(s) => Err(format!("{s:?} is not a whole number")),
            other => Err(format!("expected a whole number, found {}", describe(other))),
        }
    }
    fn to_toml(&self) -> Option<Value> {
        // Every integer key is bounded far below i64::MAX by validation or by
        // its narrower type; saturate rather than panic if one is not.
        Some(Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX)))
    }
}

/// Narrower integer types go through u64 and report their own bound.
macro_rules! narrow_integer {
    ($($ty:ty),*) => {$(
        impl ConfigValue for $ty {
            const KIND: Kind = Kind::Integer;
            fn from_toml(value: &Value) -> Result<Self, String> {
                let wide = u64::from_toml(value)?;
                <$ty>::try_from(wide)
                    .map_err(|_| format!("{wide} is too large (at most {})", <$ty>::MAX))
            }
            fn to_toml(&self) -> Option<Value> {
                (*self as u64).to_toml()
            }
        }
    )*};
}
narrow_integer!(u32, usize);

impl ConfigValue for String {
    const KIND: Kind = Kind::String;
    fn from_toml(value: &Value) -> Result<Self, String> {
        expect_str(value).map(str::to_owned)
    }
    fn to_toml(&self) -> Option<Value> {
        Some(Value::String(self.clone()))
    }
}

/// An optional key: absent from every layer means `None`.
impl<T: ConfigValue> ConfigValue for Option<T> {
    const KIND: Kind = T::KIND;
    fn from_toml(value: &Value) -> Result<Self, String> {
        T::from_toml(value).map(Some)
    }
    fn absent() -> Result<Self, String> {
        Ok(None)
    }
    fn to_toml(&self) -> Option<Value> {
        self.as_ref().and_then(T::to_toml)
    }
    fn to_toml_redacted(&self) -> Option<Value> {
        self.as_ref().and_then(T::to_toml_redacted)
    }
}

/// A secret (admin token, HMAC key). Its `Debug` never shows it, so a
/// logged `Config` cannot leak it; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret; refuses an empty one, which would authenticate anyone
    /// who sends an empty token.
    pub fn new(text: impl Into<String>) -> Result<Self, String> {
        let text = text.into();
        if text.is_empty() {
            return Err("must not be empty".to_owned());
        }
        Ok(Secret(text))
    }

    /// The secret itself, for the code that signs or compares with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl ConfigValue for Secret {
    const KIND: Kind = Kind::Secret;
    fn from_toml(value: &Value) -> Result<Self, String> {
        Secret::new(expect_str(value)?)
    }
    fn to_toml(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
    fn to_toml_redacted(&self) -> Option<Value> {
        Some(Value::String("<redacted>".to_owned()))
    }
}

impl ConfigValue for SocketAddr {
    const KIND: Kind = Kind::String;
    fn from_toml(value: &Value) -> Result<Self, String> {
        let text = expect_str(value)?;
        text.parse()
            .map_err(|_| format!("{text:?} is not a socket address IP:PORT (such as 127.0.0.1:8080 or [::1]:8080)"))
    }
    fn to_toml(&self) -> Option<Value> {
        Some(Value::String(self.to_string()))
    }
}

/// A value written as one string in the file, parsed by its `FromStr` whose
/// error completes the sentence `"text" …`.
macro_rules! text_value {
    ($($ty:ty),*) => {$(
        impl $crate::value::ConfigValue for $ty {
            const KIND: $crate::value::Kind = $crate::value::Kind::String;
            fn from_toml(value: &toml::Value) -> Result<Self, String> {
                let text = $crate::value::expect_str(value)?;
                text.parse().map_err(|why| format!("{text:?} {why}"))
            }
            fn to_toml(&self) -> Option<toml::Value> {
                Some(toml::Value::String(self.to_string()))
            }
        }
    )*};
}
pub(crate) use text_value;

/// A list of typed strings (`server.trusted_proxies`): one bad element
/// names its position.
impl<T: ConfigValue> ConfigValue for Vec<T> {
    const KIND: Kind = Kind::List;
    fn from_toml(value: &Value) -> Result<Self, String> {
        let Value::Array(items) = value else {
            return Err(format!("expected a list, found {}", describe(value)));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| T::from_toml(item).map_err(|why| format!("item {}: {why}", i + 1)))
            .collect()
    }
    fn to_toml(&self) -> Option<Value> {
        Some(Value::Array(self.iter().filter_map(T::to_toml).collect()))
    }
    fn to_toml_redacted(&self) -> Option<Value> {
        Some(Value::Array(self.iter().filter_map(T::to_toml_redacted).collect()))
    }
}

/// A closed set of names (`server.reactor = "reuseport"`): an enum with
/// `FromStr`, `Display`, `as_str` and [`ConfigValue`].
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant,)+ }

        impl $name {
            /// Every variant, in the order of the documentation.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name used in the configuration.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, String> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!("is not one of {}", [$(concat!("\"", $text, "\"")),+].join(", "))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        $crate::value::text_value!($name);
    };
}
pub(crate) use text_enum;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_from_text_must_be_whole_and_non_negative() {
        assert_eq!(Kind::Integer.parse_text("42"), Ok(Value::Integer(42)));
        for bad in ["abc", "-1", "1.5", "", " 1", "99999999999999999999"] {
            let message = Kind::Integer.parse_text(bad).unwrap_err();
            assert_eq!(message, format!("{bad:?} is not a whole number"));
        }
    }

    #[test]
    fn lists_from_text_are_comma_separated_and_trimmed() {
        let list = Kind::List.parse_text(" 10.0.0.0/8 ,127.0.0.1,, ").unwrap();
        let expected =
            Value::Array(vec![Value::String("10.0.0.0/8".to_owned()), Value::String("127.0.0.1".to_owned())]);
        assert_eq!(list, expected);
        assert_eq!(Kind::List.parse_text(""), Ok(Value::Array(vec![])));
    }

    #[test]
    fn narrow_integers_report_their_bound() {
        let message = u32::from_toml(&Value::Integer(1 << 40)).unwrap_err();
        assert_eq!(message, "1099511627776 is too large (at most 4294967295)");
    }

    #[test]
    fn secrets_are_never_debug_printed_and_never_empty() {
        let secret = Secret::new("hunter2hunter2hunter2").unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(Secret::new(""), Err("must not be empty".to_owned()));
    }
}
