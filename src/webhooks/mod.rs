//! Signed webhooks from a durable outbox (Standard Webhooks).
//!
//! # How an event travels
//! 1. A batch created with `webhook: {url, events}` stores its [`Subscription`] with it; the
//!    URL is checked first ([`Webhooks::subscription`]).
//! 2. When an item's Writer status becomes completed or failed, and when a batch's last item
//!    finishes, the database's triggers write the event into the outbox in the same
//!    transaction (so an event is never lost between the change and its record, and never
//!    written for a change that rolled back). Plain jobs stop at the triggers' first test.
//! 3. The delivery worker ([`Webhooks::run`], a task started with the server) claims due
//!    events under a lease (SKIP LOCKED on PostgreSQL, so nodes never take the same event
//!    at once), builds the body from the batch or job as the API shows it *at delivery*,
//!    signs it with the organisation's current secret (and, for a day after a rotation, with
//!    the previous one too) and POSTs it (10 s timeout, no redirects, no proxy). The
//!    client's resolver checks every address it connects to ([`address`]). A 2xx ends the
//!    event; anything else is tried again after a backoff that doubles from `backoff` up to
//!    `backoff_max`, until `retry_for` has passed since the event, when it is given up.
//!    Every attempt is recorded, and counted in `/metrics` by type and outcome.
//!
//! Delivery is at least once: a node that dies mid-attempt leaves the claim to lapse and the
//! event is tried again; receivers deduplicate by `webhook-id`, the same across attempts.
//!
//! - [`address`]: which URLs and addresses are allowed, and the checking resolver.
//! - [`signature`]: secrets and `webhook-signature`.
//! - [`worker`]: the delivery loop and one attempt.

mod address;
mod signature;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::store::{EventKind, EventKinds, OrgId, Store, StoreError, Subscription};

/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long after a rotation deliveries carry the old secret's signature beside the new
/// one's (Standard Webhooks sends several), so receivers can switch without missing any.
const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// The webhooks' settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WebhookSettings {
    /// Whether URLs may point at internal addresses (`--webhook-allow-private`).
    pub(crate) allow_private: bool,
    /// The wait after a first failed attempt; each later one doubles it.
    pub(crate) backoff: Duration,
    /// The longest wait between attempts.
    pub(crate) backoff_max: Duration,
    /// How long after its event attempts go on.
    pub(crate) retry_for: Duration,
    /// How often the worker looks for due events.
    pub(crate) poll_interval: Duration,
    /// How long in-flight deliveries may finish at shutdown.
    pub(crate) shutdown_grace: Duration,
}

/// The webhooks service: checks subscriptions, hands out secrets, delivers events.
pub(crate) struct Webhooks {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    client: reqwest::Client,
    settings: WebhookSettings,
}

/// Why a webhook cannot be subscribed: the message for a 400.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Refused(pub(crate) String);

impl Webhooks {
    /// The service over `store`.
    pub(crate) fn new(
        store: Arc<dyn Store>,
        settings: WebhookSettings,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let resolver = address::CheckedResolver {
            allow_private: settings.allow_private,
        };
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(resolver))
            .user_agent(concat!("scriptorium-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the webhook client's settings are valid");
        Arc::new(Self {
            store,
            metrics,
            client,
            settings,
        })
    }

    /// Checks a batch's `webhook`: its URL ([`address::check_url`]) and its event names (none
    /// given: `batch.completed`).
    pub(crate) async fn subscription(
        &self,
        url: &str,
        events: Option<&[String]>,
    ) -> Result<Subscription, Refused> {
        let url = address::check_url(url, self.settings.allow_private)
            .await
            .map_err(Refused)?;
        let events = match events {
            None => EventKinds::default().with(EventKind::BatchCompleted),
            Some([]) => return Err(Refused("webhook.events names no event".into())),
            Some(names) => names.iter().try_fold(EventKinds::default(), |set, name| {
                EventKind::parse(name).map(|k| set.with(k)).ok_or_else(|| {
                    Refused(format!(
                        "webhook.events: unknown event '{name}'; use batch.completed, \
                         job.completed or job.failed"
                    ))
                })
            })?,
        };
        Ok(Subscription {
            url: url.into(),
            events,
        })
    }

    /// The organisation's signing secret, made on first use.
    pub(crate) async fn secret(&self, org: &OrgId) -> Result<String, StoreError> {
        let outbox = self.store.outbox();
        let secrets = outbox.webhook_secret(org, signature::new_secret()).await?;
        Ok(secrets.current)
    }

    /// Gives the organisation a new signing secret and answers it; deliveries from now on are
    /// signed with it and, for [`ROTATION_OVERLAP`], with the one it replaced too.
    pub(crate) async fn rotate(&self, org: &OrgId) -> Result<String, StoreError> {
        let fresh = signature::new_secret();
        self.store
            .outbox()
            .rotate_webhook_secret(org, fresh.clone())
            .await?;
        Ok(fresh)
    }
}
