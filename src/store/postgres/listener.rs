//! Signals across nodes: a dedicated connection LISTENs on [`CHANNEL`] and turns each
//! notification for this store's schema into [`Notify::notify_one`] (job wake-ups), likewise
//! on [`CANCELS_CHANNEL`] (running jobs cancelled: the heartbeat renews at once), and on
//! [`APPLICATIONS_CHANNEL`] into an [`ApplicationsChanged`] for every subscriber (the caches
//! of applications).
//!
//! Writers send `pg_notify` inside their transactions, so PostgreSQL delivers it only after
//! the commit, to every node, and folds repeats within a transaction. When the connection
//! drops (a restart, `pg_terminate_backend`, a network fault noticed by TCP keepalives) the
//! task reconnects with jittered exponential backoff and then signals once on each, since
//! notifications sent while it was away are lost: a wake-up, and [`ApplicationsChanged::Missed`].
//! Missing a wake-up is never fatal: the engine polls as a fallback. The connection shows in
//! `pg_stat_activity` under the pool's application name with `-listen` appended.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};

use super::errors::map_err;
use super::{APPLICATIONS_CHANNEL, CANCELS_CHANNEL, CHANNEL};
use crate::report::Chain;
use crate::store::{ApplicationsChanged, StoreError};

/// The first wait before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

type Messages = mpsc::UnboundedReceiver<Result<AsyncMessage, tokio_postgres::Error>>;

/// Where what is heard goes.
pub(super) struct Signals {
    /// Job wake-ups.
    pub(super) wakeups: Arc<Notify>,
    /// Running jobs cancelled.
    pub(super) cancels: Arc<Notify>,
    /// Changes to applications.
    pub(super) applications: broadcast::Sender<ApplicationsChanged>,
}

impl Signals {
    /// After a reconnection: anything may have happened meanwhile.
    fn missed(&self) {
        self.wakeups.notify_one();
        self.cancels.notify_one();
        // No subscriber is no error: nothing is cached.
        let _ = self.applications.send(ApplicationsChanged::Missed);
    }
}

/// Connects and LISTENs once (so a store that opened hears every later commit), then keeps
/// listening in a task until it is aborted.
pub(super) async fn start(config: Config, signals: Signals) -> Result<JoinHandle<()>, StoreError> {
    let mut config = config;
    let name = config
        .get_application_name()
        .unwrap_or("scriptorium")
        .to_owned();
    config.application_name(format!("{name}-listen"));
    let listening = Listening::connect(&config)
        .await
        .map_err(|e| match map_err(e) {
            StoreError::Database(cause) => StoreError::Unavailable(cause),
            other => other,
        })?;
    Ok(tokio::spawn(run(config, signals, listening)))
}

async fn run(config: Config, signals: Signals, mut listening: Listening) {
    loop {
        listening.relay(&signals).await;
        listening = reconnect(&config).await;
        tracing::info!("listening for job wake-ups and application changes again");
        signals.missed();
    }
}

async fn reconnect(config: &Config) -> Listening {
    let mut delay = FIRST_BACKOFF;
    loop {
        let jitter = delay.mul_f64(fastrand::f64() * 0.5);
        tokio::time::sleep(delay + jitter).await;
        match Listening::connect(config).await {
            Ok(listening) => return listening,
            Err(e) => {
                tracing::warn!(error = %Chain(&map_err(e)), "cannot LISTEN for wake-ups yet; retrying");
                delay = (delay * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// An open LISTEN connection.
struct Listening {
    /// Kept so the connection stays open; dropping it closes the connection.
    _client: Client,
    /// The payload that addresses this store: its schema.
    schema: String,
    messages: Messages,
}

impl Listening {
    async fn connect(config: &Config) -> Result<Self, tokio_postgres::Error> {
        let (client, mut connection) = config.connect(NoTls).await?;
        let (tx, messages) = mpsc::unbounded_channel();
        // Drives the connection (queries included) and forwards what the server pushes.
        tokio::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                let failed = message.is_err();
                if tx.send(message).is_err() || failed {
                    break;
                }
            }
        });
        client
            .batch_execute(&format!(
                "LISTEN {CHANNEL}; LISTEN {CANCELS_CHANNEL}; LISTEN {APPLICATIONS_CHANNEL}"
            ))
            .await?;
        let schema = client
            .query_one("SELECT coalesce(current_schema(), '')", &[])
            .await?
            .get(0);
        Ok(Self {
            _client: client,
            schema,
            messages,
        })
    }

    /// Passes on each notification addressed to this schema until the connection ends.
    async fn relay(mut self, signals: &Signals) {
        while let Some(message) = self.messages.recv().await {
            match message {
                Ok(AsyncMessage::Notification(n)) if n.channel() == CHANNEL => {
                    if n.payload() == self.schema {
                        signals.wakeups.notify_one();
                    }
                }
                Ok(AsyncMessage::Notification(n)) if n.channel() == CANCELS_CHANNEL => {
                    if n.payload() == self.schema {
                        signals.cancels.notify_one();
                    }
                }
                Ok(AsyncMessage::Notification(n)) if n.channel() == APPLICATIONS_CHANNEL => {
                    if let Some(changed) = self.application(n.payload()) {
                        let _ = signals.applications.send(changed);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %Chain(&map_err(e)), "the LISTEN connection failed; reconnecting");
                    return;
                }
            }
        }
        tracing::warn!("the LISTEN connection closed; reconnecting");
    }

    /// The change an applications payload (`[schema, org, id]`, see
    /// [`NOTIFY_APPLICATIONS`](super::NOTIFY_APPLICATIONS)) announces, if it is this schema's.
    fn application(&self, payload: &str) -> Option<ApplicationsChanged> {
        match serde_json::from_str::<(String, String, String)>(payload) {
            Ok((schema, org, id)) => {
                (schema == self.schema).then(|| ApplicationsChanged::Changed {
                    org: org.into(),
                    id: id.into(),
                })
            }
            Err(e) => {
                tracing::warn!(payload, error = %e, "an applications notification could not be read");
                None
            }
        }
    }
}
