//! The create request's JSON body, read as a stream: its fields as they come, and its
//! `items` array one item at a time into the intake (serde's `deserialize_map` and
//! `deserialize_seq` with visitors of our own, over a [`ChunkReader`]), so a body of a
//! million items never sits in memory.
//!
//! Fields may come in any order. The intake starts storing with the priority known when the
//! items start; a `priority` after them is applied at the end (the store moves the items).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::super::super::{ApiError, ErrorCode, WebhookRequest, openapi};
use super::super::intake::{Intake, Place, Raw};
use super::{ChunkReader, holds_nul};
use crate::store::Priority;

/// The fields of the body other than its items.
#[derive(Default)]
pub(in crate::api::batches) struct Fields {
    /// An uploaded file to read the items from instead.
    pub(in crate::api::batches) file_id: Option<String>,
    /// Refuse the whole batch if any item is refused.
    pub(in crate::api::batches) strict: bool,
    /// The client's metadata.
    pub(in crate::api::batches) metadata: Option<Map<String, Value>>,
    /// Whether the body had an `items` array (even an empty one).
    pub(in crate::api::batches) items: bool,
    /// Where the batch's events go, if anywhere (checked once the body is read).
    pub(in crate::api::batches) webhook: Option<WebhookRequest>,
}

/// One item: `{custom_id?, inputs}`, the inputs as a job create takes them (kept raw, so a
/// refusal can name the input at fault).
#[derive(Deserialize, ToSchema)]
pub(super) struct ItemRequest {
    pub(super) custom_id: Option<String>,
    #[schema(schema_with = openapi::inputs)]
    pub(super) inputs: Option<Value>,
}

/// The body of a batch create, one of `items` or `file_id`, for the OpenAPI document: [`read`]
/// takes it field by field as it arrives, never whole into this.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "the body's shape, for the document; read by the visitor below"
)]
pub(crate) struct CreateBatchRequest {
    items: Option<Vec<ItemRequest>>,
    file_id: Option<String>,
    strict: Option<bool>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    priority: Option<String>,
    webhook: Option<WebhookRequest>,
}

/// Reads the body from `reader`, its items into `intake`; answers its other fields.
pub(in crate::api::batches) fn read(
    mut reader: ChunkReader,
    intake: &mut Intake,
) -> Result<Fields, ApiError> {
    let mut fields = Fields::default();
    let mut failure = None;
    let read = {
        let buffered = std::io::BufReader::with_capacity(1 << 16, &mut reader);
        let mut json = serde_json::Deserializer::from_reader(buffered);
        Body {
            intake,
            fields: &mut fields,
            failure: &mut failure,
        }
        .deserialize(&mut json)
        .and_then(|()| json.end())
    };
    match read {
        Ok(()) => Ok(fields),
        Err(e) => Err(reader
            .failure()
            .or(failure)
            .unwrap_or_else(|| unreadable(&e))),
    }
}

/// A body that is not JSON, or not of the expected shape.
fn unreadable(e: &serde_json::Error) -> ApiError {
    let description = if e.is_data() {
        format!("the body does not fit this route: {e}")
    } else {
        format!("the body is not valid JSON: {e}")
    };
    ApiError::new(ErrorCode::InvalidJson, description)
}

/// The body's top-level object. An error of ours stops the parse through a serde error,
/// and is kept in `failure` to answer instead.
struct Body<'a> {
    intake: &'a mut Intake,
    fields: &'a mut Fields,
    failure: &'a mut Option<ApiError>,
}

impl Body<'_> {
    fn fail<E: de::Error>(&mut self, error: ApiError) -> E {
        *self.failure = Some(error);
        E::custom("refused")
    }
}

impl<'de> DeserializeSeed<'de> for Body<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Body<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object {items | file_id, strict?, metadata?, priority?}")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "items" if self.fields.items => {
                    return Err(self.fail(invalid("items is given twice")));
                }
                "items" => {
                    self.fields.items = true;
                    map.next_value_seed(Items {
                        intake: &mut *self.intake,
                        failure: &mut *self.failure,
                    })?;
                }
                "file_id" => self.fields.file_id = map.next_value()?,
                "strict" => self.fields.strict = map.next_value::<Option<bool>>()?.unwrap_or(false),
                "metadata" => {
                    let metadata: Option<Map<String, Value>> = map.next_value()?;
                    if metadata
                        .as_ref()
                        .is_some_and(|m| m.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)))
                    {
                        return Err(self.fail(nul()));
                    }
                    self.fields.metadata = metadata;
                }
                "priority" => {
                    if let Some(name) = map.next_value::<Option<String>>()? {
                        let Some(priority) = Priority::parse(&name) else {
                            return Err(self.fail(ApiError::new(
                                ErrorCode::InvalidPriority,
                                "priority must be high, normal or low",
                            )));
                        };
                        self.intake.set_priority(priority);
                    }
                }
                "webhook" => {
                    self.fields.webhook = map.next_value()?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// The `items` array (or `null`), each item pushed into the intake as it is read.
struct Items<'a> {
    intake: &'a mut Intake,
    failure: &'a mut Option<ApiError>,
}

impl<'de> DeserializeSeed<'de> for Items<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for Items<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of {custom_id?, inputs}")
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<ItemRequest>()? {
            let nul_in_inputs = item.inputs.as_ref().is_some_and(holds_nul);
            let pushed = if nul_in_inputs {
                Err(nul())
            } else {
                self.intake
                    .push(item.custom_id, Raw::Inputs(item.inputs), Place::Item)
            };
            if let Err(e) = pushed {
                *self.failure = Some(e);
                return Err(de::Error::custom("refused"));
            }
        }
        Ok(())
    }
}

fn invalid(message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidBatch, message)
}

fn nul() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidText,
        "the body holds a NUL character (\\u0000), which no field accepts",
    )
}
