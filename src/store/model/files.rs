//! Files' metadata: what is recorded, read, paged, and claimed for text extraction.

use super::{WriterStatus, storable_text};
use crate::store::{FileId, OrgId};

/// A file to record, whose bytes are already in blob storage.
#[derive(Clone, Debug)]
pub struct NewFile {
    /// The public id, also the name of its blob.
    pub id: FileId,
    /// The organisation that owns it.
    pub org: OrgId,
    /// The name the uploader gave it.
    pub name: String,
    /// Its type, as a canonical extension (`pdf`, `png`, ...).
    pub kind: String,
    /// Its size in bytes.
    pub size: i64,
    /// Graphs it was uploaded into.
    pub graph_ids: Vec<String>,
}

impl NewFile {
    /// The file as recorded at `now`: `in_progress`, its text not yet extracted.
    pub(crate) fn recorded(&self, now: i64) -> FileRecord {
        FileRecord {
            id: self.id,
            name: self.name.clone(),
            kind: self.kind.clone(),
            size: self.size,
            status: WriterStatus::InProgress,
            error: None,
            word_count: None,
            graph_ids: self.graph_ids.clone(),
            created_at: now,
            text: None,
        }
    }
}

/// A stored file's metadata, and its extracted text when asked for.
#[derive(Clone, Debug)]
pub struct FileRecord {
    /// The public id.
    pub id: FileId,
    /// The name the uploader gave it.
    pub(crate) name: String,
    /// Its type, as a canonical extension.
    pub(crate) kind: String,
    /// Its size in bytes.
    pub size: i64,
    /// Where its processing stands.
    pub status: WriterStatus,
    /// Why processing failed, once `failed`.
    pub error: Option<String>,
    /// Words in its extracted text, once `completed` (none for images).
    pub word_count: Option<i64>,
    /// Graphs it belongs to.
    pub(crate) graph_ids: Vec<String>,
    /// When it was uploaded.
    pub(crate) created_at: i64,
    /// The extracted text, only when the read asked for it.
    pub text: Option<String>,
}

/// A cursor page of an organisation's files, newest first unless `ascending`.
#[derive(Clone, Debug)]
pub struct FileQuery {
    /// The organisation asking.
    pub(crate) org: OrgId,
    /// Only files after this id in list order.
    pub(crate) after: Option<FileId>,
    /// Only files before this id in list order (the API never sets both).
    pub(crate) before: Option<FileId>,
    /// Files to return at most.
    pub(crate) limit: u32,
    /// Oldest first instead of newest first.
    pub(crate) ascending: bool,
    /// Only files with this status.
    pub(crate) status: Option<WriterStatus>,
    /// Only files of these kinds (canonical extensions), when not empty.
    pub(crate) kinds: Vec<String>,
    /// Only files in this graph.
    pub(crate) graph_id: Option<String>,
}

impl FileQuery {
    /// How a backend reads the page: ids compared with the cursor (`(id, "<" or ">")`), in
    /// ascending or descending id order, `limit + 1` rows (the extra one tells whether there is
    /// more); then [`FilePage::from_rows`] trims and orders them.
    pub(crate) fn walk(&self) -> FileWalk {
        // Paging backwards (`before`) walks the list in reverse, then turns the page around.
        let backwards = self.after.is_none() && self.before.is_some();
        let cursor = match (self.after, self.before) {
            (Some(after), _) => Some((after, if self.ascending { ">" } else { "<" })),
            (None, Some(before)) => Some((before, if self.ascending { "<" } else { ">" })),
            (None, None) => None,
        };
        FileWalk {
            cursor,
            ascending: self.ascending != backwards,
            backwards,
            rows: i64::from(self.limit) + 1,
        }
    }
}

/// How to read one page of files (see [`FileQuery::walk`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct FileWalk {
    /// The cursor id and how ids compare with it.
    pub(crate) cursor: Option<(FileId, &'static str)>,
    /// Whether to read ids in ascending order.
    pub(crate) ascending: bool,
    /// Whether the rows come in reverse list order (paging with `before`).
    pub(crate) backwards: bool,
    /// Rows to read at most: one more than the page.
    pub(crate) rows: i64,
}

impl FileWalk {
    /// `ASC` or `DESC`.
    pub(crate) fn direction(&self) -> &'static str {
        if self.ascending { "ASC" } else { "DESC" }
    }
}

/// One page of files.
#[derive(Clone, Debug)]
pub struct FilePage {
    /// The files on this page, in list order.
    pub(crate) files: Vec<FileRecord>,
    /// Whether more files lie beyond the page in the direction paged.
    pub(crate) has_more: bool,
}

impl FilePage {
    /// The page from the rows read as `walk` says, for a page of `limit` files.
    pub(crate) fn from_rows(mut files: Vec<FileRecord>, walk: FileWalk, limit: u32) -> Self {
        let has_more = files.len() > limit as usize;
        files.truncate(limit as usize);
        if walk.backwards {
            files.reverse();
        }
        FilePage { files, has_more }
    }
}

/// The fence on a file a worker is extracting: its id and the attempt it claimed. A result
/// is recorded only while the file is still `in_progress` at this attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileLease {
    /// The file's id.
    pub id: FileId,
    /// The attempt this lease belongs to (1-based).
    pub attempt: u32,
}

/// The error of a file whose extraction was started `attempts` times and never finished
/// (see [`Store::claim_files`](crate::store::Store::claim_files)).
pub fn extraction_gave_up(attempts: u32) -> String {
    format!(
        "text extraction was started {attempts} times and its process stopped each time \
         (the file may be too large or malformed to extract)"
    )
}

/// A file claimed for text extraction.
#[derive(Clone, Debug)]
pub struct ClaimedFile {
    /// The fence on its result.
    pub lease: FileLease,
    /// The name it was uploaded with, for log lines.
    pub name: String,
    /// Its type, as detected at upload (a canonical extension).
    pub kind: String,
}

/// What recording a new file did.
#[derive(Clone, Debug)]
pub enum FileInserted {
    /// Recorded, `in_progress`.
    Stored(FileRecord),
    /// Not recorded: the organisation's files would exceed its quota. `used` is what its
    /// files take now, in bytes.
    OverQuota {
        /// Bytes the organisation's files take.
        used: i64,
    },
}

impl FileProcessed {
    /// The same result with its text made [`storable_text`].
    pub fn storable(self) -> Self {
        match self {
            Self::Completed { text, word_count } => Self::Completed {
                text: text.map(storable_text),
                word_count,
            },
            Self::Failed { error } => Self::Failed {
                error: storable_text(error),
            },
        }
    }
}

/// The result of processing a file, to record.
#[derive(Clone, Debug)]
pub enum FileProcessed {
    /// Text extracted (empty for images): the file is `completed`.
    Completed {
        /// The extracted text, if the file is a document.
        text: Option<String>,
        /// Words in it.
        word_count: Option<i64>,
    },
    /// Extraction failed: the file is `failed`.
    Failed {
        /// Why, for the user.
        error: String,
    },
}
