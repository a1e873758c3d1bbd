//! How PostgreSQL keeps the identifiers: as `text`, a job's and a file's id in their
//! lowercase hyphenated form (written straight into the statement's buffer), an
//! application's id and an organisation's name as they are.

use std::error::Error;

use bytes::BytesMut;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use uuid::fmt::Hyphenated;

use crate::store::{ApplicationId, BatchId, FileId, JobId, OrgId};

/// What a conversion fails with.
type ConversionError = Box<dyn Error + Sync + Send>;

/// `ToSql` and `FromSql` for an id stored as its UUID text.
macro_rules! uuid_text {
    ($name:ident) => {
        impl ToSql for $name {
            fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, ConversionError> {
                self.encode(&mut [0; Hyphenated::LENGTH]).to_sql(ty, out)
            }

            fn accepts(ty: &Type) -> bool {
                <&str as ToSql>::accepts(ty)
            }

            to_sql_checked!();
        }

        impl<'a> FromSql<'a> for $name {
            fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, ConversionError> {
                let text = <&str as FromSql>::from_sql(ty, raw)?;
                $name::parse(text).ok_or_else(|| format!("{text:?} is not a stored id").into())
            }

            fn accepts(ty: &Type) -> bool {
                <&str as FromSql>::accepts(ty)
            }
        }
    };
}

uuid_text!(JobId);
uuid_text!(FileId);
uuid_text!(BatchId);

/// `ToSql` and `FromSql` for an id stored as its text.
macro_rules! text {
    ($name:ident) => {
        impl ToSql for $name {
            fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, ConversionError> {
                self.as_str().to_sql(ty, out)
            }

            fn accepts(ty: &Type) -> bool {
                <&str as ToSql>::accepts(ty)
            }

            to_sql_checked!();
        }

        impl<'a> FromSql<'a> for $name {
            fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, ConversionError> {
                String::from_sql(ty, raw).map($name::from)
            }

            fn accepts(ty: &Type) -> bool {
                <String as FromSql>::accepts(ty)
            }
        }
    };
}

text!(ApplicationId);
text!(OrgId);
