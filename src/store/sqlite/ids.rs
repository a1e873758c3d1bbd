//! How SQLite keeps the identifiers: as `TEXT`, a job's and a file's id in their lowercase
//! hyphenated form, an application's id and an organisation's name as they are.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::store::{ApplicationId, BatchId, FileId, JobId, OrgId};

/// `ToSql` and `FromSql` for an id stored as its UUID text.
macro_rules! uuid_text {
    ($name:ident) => {
        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.to_string()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                $name::parse(text).ok_or_else(|| {
                    FromSqlError::Other(format!("{text:?} is not a stored id").into())
                })
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
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                String::column_result(value).map($name::from)
            }
        }
    };
}

text!(ApplicationId);
text!(OrgId);
