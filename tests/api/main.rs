//! The integration tests: each starts the real server (in process on port 0, or as a child
//! process where a test kills it) and talks HTTP to it.

mod helpers;

mod abuse;
mod applications;
mod auth;
mod batch_crash;
mod batch_intake;
mod batches;
mod blobs;
mod cli;
mod cli_batch;
mod cluster;
mod cluster_apps;
mod conformance;
mod crash;
mod definitions;
mod errors;
mod fallback;
mod figures;
mod files;
mod jobs;
mod lifecycle;
mod mockllm;
mod ops;
mod pg;
mod preview;
mod process;
mod providers;
mod push_pull;
mod scheduler;
mod schemathesis;
mod sdk;
mod ui;
mod ui_batches;
mod ui_browser;
mod ui_browser_batches;
mod ui_ops;
mod validation;
mod webhooks;
