//! # scriptorium
//!
//! A self-hosted server that runs Writer-compatible no-code applications (typed inputs, a
//! prompt template and a model) as durable, asynchronous batch jobs.
//!
//! # Layout
//! Data flows one way: HTTP → [`api`] (parse, authenticate, validate against the
//! application) → [`store`] (insert; 202) → [`engine`] (claim, render, call a provider) →
//! [`store`] (complete or fail, fenced) → [`api`] (read).
//!
//! - [`api`]: the axum routers; the one table of error codes every answer goes through, in
//!   Writer's shape; request ids; the refusal of text no field accepts. Never calls a
//!   provider for an async job; never holds a transaction.
//! - [`apps`]: application definitions: provisioned from TOML files, or each organisation's
//!   own, kept in the store as versions (the catalog, which holds the current versions in
//!   memory); validation at load, at change and at submit; prompt rendering. Talks to the
//!   store only through the catalog.
//! - [`auth`]: API keys, shown once and stored as hashes; organisations as tenants.
//! - [`engine`]: the job state machine: batched claims, leases and heartbeats (a lost lease
//!   stops its attempt; a cancel takes the lease away, and wakes the heartbeat), retries with backoff, waits for a busy provider that spend no
//!   attempt, the reaper, graceful shutdown, named failure points. The only caller of
//!   providers for jobs; its `prepare` (application and inputs to a provider request) is
//!   also what synchronous generation uses. `Engine::run_until_idle` drives it by hand in
//!   its unit tests.
//! - [`files`]: uploads (bytes in a directory or an S3-compatible bucket, metadata in the
//!   store; uploads stream to disk), text extraction as leased, fenced work (like jobs), and
//!   the files and images jobs give models.
//! - [`providers`]: the model backends, a closed enum (OpenAI-compatible servers, Writer's chat
//!   API, the deterministic mock), each behind a gate that enforces its limits (across a
//!   cluster through the store's shared limits), hands out its slots by priority and in
//!   turns across organisations, and, with `max_concurrency = "auto"`, moves its limit to the
//!   server's knee. An application's fallback providers are routed to the first with room.
//! - [`store`]: the bottom layer: every SQL statement, behind the [`store::Store`] trait
//!   (SQLite or PostgreSQL), and the types it shares with the layers above (the ids of
//!   jobs, batches, files, applications and organisations, which [`api`] parses once where a request
//!   names them; the retry policy, priority, token usage, the provider limits a cluster
//!   shares). Its claims take turns across organisations and order each one's work by
//!   priority.
//!   Imports none of them (only the leaf [`report`]).
//! - [`metrics`]: the Prometheus families `GET /metrics` answers: what the engine and the
//!   HTTP layer observe (atomic updates, no lock per job), and what is read at each scrape
//!   from the store's job counters and the providers' gates. Never scans the jobs.
//! - [`webhooks`]: signed deliveries (Standard Webhooks) of the events the store's triggers
//!   write into its outbox as batches' items and batches finish: checks of the URLs
//!   (internal addresses refused, at create and again at each connection), secrets, the
//!   delivery worker with its retries. Reads the batch or job it tells of through the store
//!   and shows it with [`api`]'s views; writes nothing but the outbox's attempts and the
//!   secrets.
//! - [`claims`]: the claim loop both leased workers run (the engine's, the files').
//! - [`report`]: the cause an error keeps (its source, with context) and the one-line text of
//!   an error with all its causes, for wherever an error becomes text for a person. A leaf:
//!   every layer uses it, the store included.
//! - [`config`]: one typed [`config::Settings`] from defaults, file, environment and flags.
//! - [`server`]: assembles the parts and runs them until shutdown; its `connections` is the
//!   HTTP/1 listener, holding each connection to header, body and idle timeouts and the
//!   server to a connection cap; its `peers` checks at start that the nodes sharing a
//!   database serve the same apps folder.
//! - [`ui`]: the dashboard at `/ui/`: server-rendered pages and their assets, compiled in;
//!   sessions opened with an API key (kept in the store), and the task that rolls finished
//!   jobs up per minute for its charts. Reads and writes through what [`api`]'s handlers use
//!   (often the handlers themselves), never over HTTP, and keeps no rule of its own.
//! - [`cli`]: the subcommands; `main.rs` only dispatches to it. `apps push|pull|list|show`,
//!   `jobs` and `batch` talk to a running server over HTTP only (one client, `cli::remote`),
//!   never to its store.
//!
//! Beside this crate, in the same workspace, and never depended on by it:
//! - `crates/mock-llm` (`mock-llm`): an OpenAI-compatible mock model server with seeded
//!   faults, latency and capacity, for tests and benchmarks. It stands alone: it depends on
//!   nothing of this library.
//! - `crates/bench` (`scriptorium-bench`): the measured figures (real servers, measured over
//!   HTTP). It depends on this library and on `mock-llm`.
//!
//! Only what `main.rs`, the integration tests and the bench crate use is `pub`; everything
//! else is `pub(crate)`, so the compiler reports dead code. The lints (no `unsafe`, docs on
//! public items, clippy) are set once for the workspace, in the root `Cargo.toml`.

pub(crate) mod api;
pub mod apps;
pub mod auth;
pub(crate) mod claims;
pub mod cli;
pub mod config;
pub(crate) mod engine;
pub mod files;
pub(crate) mod metrics;
pub mod providers;
pub mod report;
pub mod server;
pub mod store;
pub(crate) mod ui;
pub(crate) mod webhooks;
