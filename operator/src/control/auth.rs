//! Who is on the other end of a control stream: the Pod its projected
//! ServiceAccount token is bound to, as a TokenReview says.
//!
//! Answers are cached for a short while, keyed by the SHA-256 of the token,
//! so a sidecar that reconnects in a loop does not load the API server.
//! The token itself is never logged, stored or put in an error.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gossamer_operator_core::PodIdentity;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use kube::api::PostParams;
use kube::{Api, Client};
use sha2::{Digest, Sha256};

/// The TokenReview extra that names the Pod a token is bound to.
pub const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";
/// How long an answer is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// At most this many answers are cached.
const CACHE_LIMIT: usize = 10_000;

/// Why a token is refused (gRPC `UNAUTHENTICATED`), or could not be checked
/// (`UNAVAILABLE`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization: Bearer` metadata.
    #[error("no bearer token: send the projected ServiceAccount token (audience {0}) as `authorization: Bearer <token>`")]
    NoToken(String),
    /// The API server did not authenticate it (expired, wrong audience,
    /// bad signature, its Pod is gone).
    #[error("the API server rejected the token: {0}")]
    Rejected(String),
    /// Authenticated, but not bound to a Pod.
    #[error("the token of {0} is not bound to a Pod; mount a projected ServiceAccount token")]
    NotPodBound(String),
    /// The TokenReview itself failed.
    #[error("cannot review the token: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// A short reason for metric labels and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::NoToken(_) => "NoToken",
            AuthError::Rejected(_) => "TokenRejected",
            AuthError::NotPodBound(_) => "NotPodBound",
            AuthError::Unavailable(_) => "ReviewFailed",
        }
    }
}

type Hash = [u8; 32];
type Answer = Result<PodIdentity, AuthError>;

/// Reviews tokens, with a short cache.
pub struct Authenticator {
    client: Client,
    audience: String,
    cache: Mutex<HashMap<Hash, (Instant, Answer)>>,
}

impl Authenticator {
    /// Reviews tokens for `audience`.
    pub fn new(client: Client, audience: String) -> Self {
        Authenticator {
            client,
            audience,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The audience tokens must carry.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The Pod the token is bound to.
    pub async fn authenticate(&self, token: &str) -> Result<PodIdentity, AuthError> {
        let hash: Hash = Sha256::digest(token.as_bytes()).into();
        #[allow(clippy::disallowed_methods)] // the shell reads the clock
        let now = Instant::now();
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((until, answer)) = cache.get(&hash) {
                if *until > now {
                    return answer.clone();
                }
            }
        }
        let answer = self.review(token).await;
        // A failed review says nothing of the token: ask again next time.
        if !matches!(answer, Err(AuthError::Unavailable(_))) {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= CACHE_LIMIT {
                cache.retain(|_, (until, _)| *until > now);
            }
            if cache.len() < CACHE_LIMIT {
                cache.insert(hash, (now + CACHE_TTL, answer.clone()));
            }
        }
        answer
    }

    async fn review(&self, token: &str) -> Result<PodIdentity, AuthError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: Some(vec![self.audience.clone()]),
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let done = api
            .create(&PostParams::default(), &review)
            .await
            // kube's error names the request, never its body.
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        identity(&self.audience, done.status.unwrap_or_default())
    }
}

/// The token of an `authorization` header value (`Bearer <token>`).
pub fn bearer<'a>(header: Option<&'a str>, audience: &str) -> Result<&'a str, AuthError> {
    header
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AuthError::NoToken(audience.to_string()))
}

/// The Pod a TokenReview's answer names.
fn identity(audience: &str, status: TokenReviewStatus) -> Result<PodIdentity, AuthError> {
    if status.authenticated != Some(true) {
        return Err(AuthError::Rejected(
            status
                .error
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "not authenticated".into()),
        ));
    }
    if !status
        .audiences
        .as_ref()
        .is_some_and(|a| a.iter().any(|a| a == audience))
    {
        return Err(AuthError::Rejected(format!(
            "the token is not for audience {audience}"
        )));
    }
    let user = status.user.unwrap_or_default();
    let username = user.username.unwrap_or_default();
    // system:serviceaccount:<namespace>:<name>
    let namespace = username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(ns, _)| ns.to_string());
    let pod = user
        .extra
        .as_ref()
        .and_then(|x| x.get(POD_NAME_EXTRA))
        .and_then(|v| v.first())
        .cloned();
    match (namespace, pod) {
        (Some(namespace), Some(name)) => Ok(PodIdentity { namespace, name }),
        _ => Err(AuthError::NotPodBound(username)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::UserInfo;

    fn status(audiences: &[&str], pod: Option<&str>) -> TokenReviewStatus {
        TokenReviewStatus {
            authenticated: Some(true),
            audiences: Some(audiences.iter().map(|s| s.to_string()).collect()),
            user: Some(UserInfo {
                username: Some("system:serviceaccount:shop:default".into()),
                extra: pod.map(|p| [(POD_NAME_EXTRA.to_string(), vec![p.to_string()])].into()),
                ..Default::default()
            }),
            error: None,
        }
    }

    #[test]
    fn a_pod_bound_token_names_its_pod() {
        assert_eq!(
            identity("gossamer", status(&["gossamer"], Some("web-0"))),
            Ok(PodIdentity {
                namespace: "shop".into(),
                name: "web-0".into()
            })
        );
    }

    #[test]
    fn the_token_is_the_bearer_credential() {
        assert_eq!(bearer(Some("Bearer abc"), "gossamer"), Ok("abc"));
        for bad in [None, Some("Basic abc"), Some("Bearer "), Some("abc")] {
            assert_eq!(
                bearer(bad, "gossamer"),
                Err(AuthError::NoToken("gossamer".into()))
            );
        }
    }

    #[test]
    fn refusals_say_why() {
        let e = identity("gossamer", status(&["https://kubernetes"], Some("web-0"))).unwrap_err();
        assert_eq!(e.reason(), "TokenRejected");
        let e = identity("gossamer", status(&["gossamer"], None)).unwrap_err();
        assert_eq!(
            e,
            AuthError::NotPodBound("system:serviceaccount:shop:default".into())
        );
        let e = identity(
            "gossamer",
            TokenReviewStatus {
                authenticated: Some(false),
                error: Some("token has expired".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the API server rejected the token: token has expired"
        );
    }
}
