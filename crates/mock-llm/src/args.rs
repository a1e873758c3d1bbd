//! The mock's flags: latency, output length, capacity and fault rates, each also read from a
//! `MOCK_LLM_*` environment variable. [`Rate`] is a probability parsed once at the boundary,
//! so the fault draw never meets a value outside `0..=1`.

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// How `mock-llm` behaves: flags, environment variables, or a struct literal in tests
/// (`MockLlmArgs { fail_500: Rate::ALWAYS, ..Default::default() }`).
#[derive(Clone, Debug, PartialEq, clap::Args)]
pub struct MockLlmArgs {
    /// Address to listen on.
    #[arg(long, env = "MOCK_LLM_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Seed for the generated words and the fault draws; one seed, one run.
    #[arg(long, env = "MOCK_LLM_SEED", default_value_t = 0)]
    pub seed: u64,
    /// Time to first token.
    #[arg(long, env = "MOCK_LLM_TTFT", default_value = "0ms", value_parser = humantime::parse_duration)]
    pub ttft: Duration,
    /// Time per output token after the first.
    #[arg(long, env = "MOCK_LLM_PER_TOKEN", default_value = "0ms", value_parser = humantime::parse_duration)]
    pub per_token: Duration,
    /// Tokens generated per answer, capped by the request's `max_tokens`.
    #[arg(long, env = "MOCK_LLM_OUTPUT_TOKENS", default_value_t = 32)]
    pub output_tokens: u32,
    /// Requests served at once; 0 is unlimited.
    #[arg(long, env = "MOCK_LLM_CAPACITY", default_value_t = 0)]
    pub capacity: usize,
    /// What a request beyond capacity gets: wait for a slot, or a 429.
    #[arg(
        long,
        env = "MOCK_LLM_OVER_CAPACITY",
        value_enum,
        default_value = "queue"
    )]
    pub over_capacity: OverCapacity,
    /// With `--over-capacity queue`, how many requests may wait for a slot; one more is
    /// answered 503 at once (as Ollama does past its queue). 0 is unlimited.
    #[arg(long, env = "MOCK_LLM_QUEUE_LIMIT", default_value_t = 0)]
    pub queue_limit: usize,
    /// The wait a 429 asks for (`Retry-After` seconds, rounded up, and `retry-after-ms`).
    #[arg(long, env = "MOCK_LLM_RETRY_AFTER", default_value = "1s", value_parser = humantime::parse_duration)]
    pub retry_after: Duration,
    /// How long after a 429 a request still counts as already on its way (not as early):
    /// the time a client needs to hear of the 429 (more in a cluster, where other nodes must).
    #[arg(long, env = "MOCK_LLM_GRACE", default_value = "20ms", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// Probability (0..1) that a request answers 500.
    #[arg(long, env = "MOCK_LLM_FAIL_500", default_value = "0")]
    pub fail_500: Rate,
    /// Probability that a request answers 503.
    #[arg(long, env = "MOCK_LLM_FAIL_503", default_value = "0")]
    pub fail_503: Rate,
    /// Probability that a request answers 429 with a retry-after.
    #[arg(long, env = "MOCK_LLM_FAIL_429", default_value = "0")]
    pub fail_429: Rate,
    /// Probability that a request is held open, unanswered, until the client leaves (10 min).
    #[arg(long, env = "MOCK_LLM_FAIL_HANG", default_value = "0")]
    pub fail_hang: Rate,
    /// Probability that a request answers 200 with a body that is not JSON.
    #[arg(long, env = "MOCK_LLM_FAIL_MALFORMED", default_value = "0")]
    pub fail_malformed: Rate,
    /// Probability that the connection is closed without an answer.
    #[arg(long, env = "MOCK_LLM_FAIL_DROP", default_value = "0")]
    pub fail_drop: Rate,
    /// When set, requests must carry `Authorization: Bearer KEY`.
    #[arg(long, env = "MOCK_LLM_API_KEY")]
    pub api_key: Option<String>,
    /// The model `/v1/models` lists and answers name when a request names none.
    #[arg(long, env = "MOCK_LLM_MODEL", default_value = "mock-llm")]
    pub model: String,
    /// Refuse requests with image parts (400), as a text-only model does.
    #[arg(long, env = "MOCK_LLM_NO_IMAGES")]
    pub no_images: bool,
}

impl Default for MockLlmArgs {
    /// The same values as the flags' defaults (a unit test holds them together).
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8000)),
            seed: 0,
            ttft: Duration::ZERO,
            per_token: Duration::ZERO,
            output_tokens: 32,
            capacity: 0,
            over_capacity: OverCapacity::Queue,
            queue_limit: 0,
            retry_after: Duration::from_secs(1),
            grace: Duration::from_millis(20),
            fail_500: Rate::NEVER,
            fail_503: Rate::NEVER,
            fail_429: Rate::NEVER,
            fail_hang: Rate::NEVER,
            fail_malformed: Rate::NEVER,
            fail_drop: Rate::NEVER,
            api_key: None,
            model: "mock-llm".to_owned(),
            no_images: false,
        }
    }
}

/// What happens to a request that arrives when every slot is taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OverCapacity {
    /// Wait, first come first served, for a slot.
    #[default]
    Queue,
    /// Answer 429 at once, with the configured retry-after.
    Reject,
}

/// A probability in `0..=1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub struct Rate(f64);

/// A rate that is not a number in `0..=1`.
#[derive(Debug, thiserror::Error)]
#[error("a rate is a probability between 0 and 1, not {0:?}")]
pub struct InvalidRate(String);

impl Rate {
    /// Never happens.
    pub const NEVER: Self = Self(0.0);
    /// Happens every time.
    pub const ALWAYS: Self = Self(1.0);

    /// The rate `p`, if it is a probability.
    pub fn new(p: f64) -> Result<Self, InvalidRate> {
        if (0.0..=1.0).contains(&p) {
            Ok(Self(p))
        } else {
            Err(InvalidRate(p.to_string()))
        }
    }

    /// The probability.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl FromStr for Rate {
    type Err = InvalidRate;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let p = s
            .trim()
            .parse::<f64>()
            .map_err(|_| InvalidRate(s.to_owned()))?;
        Self::new(p).map_err(|_| InvalidRate(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: MockLlmArgs,
    }

    #[test]
    fn the_default_matches_the_flag_defaults() {
        // The developer's shell may set MOCK_LLM_*, which clap reads; then there is no check.
        if std::env::vars().any(|(name, _)| name.starts_with("MOCK_LLM_")) {
            return;
        }
        let parsed = Wrapper::try_parse_from(["mock-llm"]).unwrap();
        assert_eq!(parsed.args, MockLlmArgs::default());
    }

    #[test]
    fn flags_parse_durations_rates_and_the_capacity_policy() {
        let parsed = Wrapper::try_parse_from([
            "mock-llm",
            "--ttft=150ms",
            "--fail-503=0.25",
            "--over-capacity=reject",
        ])
        .unwrap();
        assert_eq!(parsed.args.ttft, Duration::from_millis(150));
        assert_eq!(parsed.args.fail_503.get(), 0.25);
        assert_eq!(parsed.args.over_capacity, OverCapacity::Reject);
    }

    #[test]
    fn a_rate_outside_zero_to_one_is_refused() {
        assert!("1.5".parse::<Rate>().is_err());
        assert!("-0.1".parse::<Rate>().is_err());
        assert!("NaN".parse::<Rate>().is_err());
        assert!(Wrapper::try_parse_from(["mock-llm", "--fail-500=2"]).is_err());
    }
}
