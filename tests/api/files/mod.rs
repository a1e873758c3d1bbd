//! The Files API end to end, by topic: uploads in every Content-Disposition form, type
//! detection and limits (`uploads.rs`); list paging and filters, download, delete and
//! tenancy (`reading.rs`); text extraction of each document type, retries and files left in
//! progress (`processing.rs`); and file and media inputs reaching the model (`inputs.rs`).

mod inputs;
mod processing;
mod reading;
mod uploads;
