//! The identifiers that travel from the API through the store to the engine, each a type of
//! its own, so that one can never be passed where another is meant.
//!
//! - [`JobId`], [`FileId`] and [`BatchId`] are UUIDv7s, made by the server. Their one text form, on the
//!   wire and in both databases, is the lowercase hyphenated one; [`JobId::parse`] accepts
//!   only that, so the same UUID sent in another spelling names nothing, as any unknown id
//!   does. They are `Copy`, and JSON bodies and PostgreSQL's parameters get their text
//!   written straight in, without a `String` in between.
//! - [`ApplicationId`] (chosen in an application's definition, not made by the server) and
//!   [`OrgId`] (an organisation's name) wrap their text.
//!
//! How each is stored lives with the backends (`sqlite/ids.rs`, `postgres/ids.rs`).

use std::borrow::Borrow;
use std::fmt;

use serde::{Serialize, Serializer};
use uuid::Uuid;
use uuid::fmt::Hyphenated;

/// The parts of [`JobId`], [`FileId`] and [`BatchId`]: the same representation, for different things.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id: a UUIDv7, so ids made later sort after earlier ones.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// The id written as `text`, which must be in the one form the server writes
            /// (lowercase, hyphenated); `None` for anything else.
            pub fn parse(text: &str) -> Option<Self> {
                let canonical = text.len() == Hyphenated::LENGTH
                    && text.bytes().enumerate().all(|(at, byte)| match at {
                        8 | 13 | 18 | 23 => byte == b'-',
                        _ => matches!(byte, b'0'..=b'9' | b'a'..=b'f'),
                    });
                if !canonical {
                    return None;
                }
                Uuid::try_parse(text).ok().map(Self)
            }

            /// Its text (lowercase, hyphenated), written into `buffer` instead of allocating.
            pub(crate) fn encode<'b>(&self, buffer: &'b mut [u8; Hyphenated::LENGTH]) -> &'b str {
                self.0.hyphenated().encode_lower(buffer)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.encode(&mut [0; Hyphenated::LENGTH]))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.encode(&mut [0; Hyphenated::LENGTH]))
            }
        }
    };
}

uuid_id!(
    /// A job's public id.
    JobId
);

impl JobId {
    /// When the id was made (microseconds since the Unix epoch), from the time a UUIDv7
    /// carries: the job's creation, to the millisecond; 0 for an id that is not a v7.
    pub(crate) fn created_at_micros(&self) -> i64 {
        self.0.get_timestamp().map_or(0, |t| {
            let (secs, nanos) = t.to_unix();
            (secs as i64).saturating_mul(1_000_000) + i64::from(nanos / 1000)
        })
    }
}

uuid_id!(
    /// A file's public id, also the name of its blob.
    FileId
);

uuid_id!(
    /// A batch's public id.
    BatchId
);

/// An application's id, as its definition names it (`[A-Za-z0-9_-]+`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ApplicationId(String);

/// An organisation, by name: the tenant that owns keys, jobs and files.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrgId(String);

/// The parts of [`ApplicationId`] and [`OrgId`], which wrap their text.
macro_rules! text_id {
    ($name:ident) => {
        impl $name {
            /// The id's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                Self(text)
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self(text.to_owned())
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }
    };
}

text_id!(ApplicationId);
text_id!(OrgId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_lowercase_hyphenated_form_parses_and_it_reads_back_the_same() {
        let id = JobId::generate();
        let text = id.to_string();
        assert_eq!(JobId::parse(&text), Some(id));
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{text}\""));
        let simple = text.replace('-', "");
        for other in [
            text.to_uppercase(),
            simple,
            format!("{{{text}}}"),
            format!("urn:uuid:{text}"),
            format!(" {text}"),
            text[..35].to_owned(),
            format!("{text}0"),
            text.replacen('-', "x", 1),
            String::new(),
        ] {
            assert_eq!(JobId::parse(&other), None, "{other:?}");
        }
    }

    #[test]
    fn ids_made_later_sort_after_earlier_ones_as_text_does() {
        let (first, second) = (FileId::generate(), FileId::generate());
        assert!(first < second);
        assert!(first.to_string() < second.to_string());
        assert_eq!(format!("{first:>40}").len(), 40, "Display pads");
    }
}
