//! Standard Webhooks signatures: an organisation's secret is `whsec_` and the base64 of 32
//! random bytes; the key is those bytes; a delivery's `webhook-signature` is
//! `v1,` and the base64 of HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::store::{SigningSecrets, after};

/// What every secret starts with.
const PREFIX: &str = "whsec_";
/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;

/// A new random secret, `whsec_<base64>`.
pub(crate) fn new_secret() -> String {
    let mut key = [0u8; SECRET_BYTES];
    getrandom::fill(&mut key).expect("the operating system's random source failed");
    format!("{PREFIX}{}", STANDARD.encode(key))
}

/// The `webhook-signature` value for one delivery, signed with `secret` (as
/// [`new_secret`] makes them; the key is the base64-decoded part after `whsec_`).
fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let encoded = secret.strip_prefix(PREFIX).unwrap_or(secret);
    // A stored secret is always one the server made; were it not base64, its bytes still key.
    let key = STANDARD
        .decode(encoded)
        .unwrap_or_else(|_| encoded.as_bytes().to_vec());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: the current secret's signature and, within `overlap` of
/// the last rotation (at `now`), the previous secret's, space-separated.
pub(crate) fn header(
    secrets: &SigningSecrets,
    overlap: Duration,
    now: i64,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut header = sign(&secrets.current, id, timestamp, body);
    if let Some((previous, rotated_at)) = &secrets.previous
        && after(*rotated_at, overlap) > now
    {
        header.push(' ');
        header.push_str(&sign(previous, id, timestamp, body));
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries' tests.
    #[test]
    fn signs_as_the_standard_webhooks_reference_does() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn new_secrets_are_prefixed_random_and_decode_to_32_bytes() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        let key = STANDARD.decode(a.strip_prefix(PREFIX).unwrap()).unwrap();
        assert_eq!(key.len(), SECRET_BYTES);
    }

    #[test]
    fn the_previous_secret_also_signs_for_the_overlap_after_a_rotation() {
        let secrets = SigningSecrets {
            current: new_secret(),
            previous: Some((new_secret(), 1_000)),
        };
        let day = Duration::from_secs(86_400);
        let both = header(&secrets, day, 2_000, "msg_1", 5, b"{}");
        let signatures: Vec<&str> = both.split(' ').collect();
        assert_eq!(signatures.len(), 2, "{both}");
        assert_eq!(signatures[0], sign(&secrets.current, "msg_1", 5, b"{}"));
        let (previous, _) = secrets.previous.as_ref().unwrap();
        assert_eq!(signatures[1], sign(previous, "msg_1", 5, b"{}"));
        let later = 1_000 + 86_400 * 1_000_000;
        assert_eq!(
            header(&secrets, day, later, "msg_1", 5, b"{}"),
            signatures[0]
        );
    }
}
