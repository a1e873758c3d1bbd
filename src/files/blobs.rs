//! TEMPORARY stub until the helper's module lands.
use std::path::Path;
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BlobConfig { Local, S3(S3Config) }
#[derive(Clone, Debug, serde::Deserialize)]
pub struct S3Config { pub bucket: String }
#[derive(Clone)]
pub struct Blobs { dir: std::path::PathBuf }
#[derive(Debug, thiserror::Error)]
pub enum BlobError { #[error("not found")] NotFound, #[error("{0}")] Io(String) }
impl Blobs {
    pub fn open(_config: &BlobConfig, data_dir: &Path) -> Result<Blobs, BlobError> { Ok(Blobs { dir: data_dir.join("files") }) }
    pub async fn check(&self) -> Result<(), BlobError> { std::fs::create_dir_all(&self.dir).map_err(|e| BlobError::Io(e.to_string())) }
    pub async fn put(&self, id: &str, bytes: bytes::Bytes) -> Result<(), BlobError> { std::fs::write(self.dir.join(id), bytes).map_err(|e| BlobError::Io(e.to_string())) }
    pub async fn get(&self, id: &str) -> Result<bytes::Bytes, BlobError> { std::fs::read(self.dir.join(id)).map(Into::into).map_err(|_| BlobError::NotFound) }
    pub async fn delete(&self, id: &str) -> Result<(), BlobError> { let _ = std::fs::remove_file(self.dir.join(id)); Ok(()) }
    pub fn describe(&self) -> String { format!("directory {}", self.dir.display()) }
}
