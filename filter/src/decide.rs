//! The per-request decision. The host reports what happened (headers, body, the auth answer);
//! the gate answers with effects to apply (remove/set a request header, call Auth/Check, send a
//! local reply, resume) and whether the current callback continues or pauses.
//! Pure: no proxy-wasm, no clock and no randomness (time and the request id are passed in).

use gateway_proto::auth::v1::{CheckRequest, CheckResponse};

use crate::auth::{self, Grant, KeyHash};
use crate::body::{self, BodyFacts};
use crate::cache::AuthCache;
use crate::config::Config;
use crate::headers::{self, HeaderList};
use crate::key;
use crate::reply::LocalReply;
use crate::route::{self, Route};

/// What the host knows when the request headers arrive.
pub struct RequestView<'a> {
    pub method: &'a str,
    /// `:path` as received, query string included.
    pub path: &'a str,
    /// Regular request headers (pseudo-headers may be present; they are ignored).
    pub headers: &'a HeaderList,
    pub end_of_stream: bool,
    pub now_ms: u64,
}

/// A rendered local reply, ready for the host to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// One thing for the host to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    RemoveHeader(String),
    SetHeader(&'static str, String),
    /// Dispatch `gateway.auth.v1.Auth/Check` and report the outcome to [`Gate::on_auth_answer`].
    CallAuth(CheckRequest),
    /// Send this reply instead of forwarding the request.
    Reply(Reply),
    /// Resume a request paused in an earlier callback.
    Resume,
}

/// What the current filter callback returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Pause,
}

#[derive(Debug)]
pub struct Step {
    pub effects: Vec<Effect>,
    pub flow: Flow,
}

/// The outcome of an `Auth/Check` call.
pub enum AuthAnswer {
    Answered(CheckResponse),
    /// Transport failure, timeout, non-OK gRPC status or an undecodable answer (for logs).
    Failed(String),
}

enum AuthState {
    NotNeeded,
    Pending(KeyHash),
    Granted(Grant),
}

enum BodyState {
    NotNeeded,
    Buffering,
    Checked(BodyFacts),
    /// Held until the key is verified: an auth failure is reported before a body error.
    Rejected(LocalReply),
}

/// The gate's state for one request.
pub struct Gate {
    request_id: String,
    route: Route,
    auth: AuthState,
    body: BodyState,
    done: bool,
}

impl Gate {
    pub fn new(request_id: String) -> Self {
        Self {
            request_id,
            route: Route::Other,
            auth: AuthState::NotNeeded,
            body: BodyState::NotNeeded,
            done: false,
        }
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    pub fn on_request_headers(
        &mut self,
        view: &RequestView<'_>,
        config: &Config,
        cache: &mut AuthCache,
    ) -> Step {
        // Header hygiene comes first, whatever happens next.
        let mut effects: Vec<Effect> = headers::internal_header_names(view.headers)
            .into_iter()
            .map(Effect::RemoveHeader)
            .collect();
        let presented = key::extract(view.headers).map(str::to_owned);
        for name in [headers::X_API_KEY, headers::AUTHORIZATION] {
            if headers::get(view.headers, name).is_some() {
                effects.push(Effect::RemoveHeader(name.to_owned()));
            }
        }
        effects.push(Effect::SetHeader(
            headers::REQUEST_ID,
            self.request_id.clone(),
        ));

        self.route = route::classify(view.method, view.path, view.headers);
        if !self.route.needs_key() {
            self.done = true;
            return Step {
                effects,
                flow: Flow::Continue,
            };
        }
        let Some(presented) = presented else {
            return self.reply(effects, LocalReply::missing_key());
        };
        let content_length =
            headers::get(view.headers, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
        if content_length.is_some_and(|len| len > config.max_body_bytes) {
            return self.reply(effects, LocalReply::too_large(config.max_body_bytes));
        }
        if self.route.checks_body() {
            self.body = if view.end_of_stream {
                self.check_body(b"")
            } else {
                BodyState::Buffering
            };
        }

        let hash = auth::key_hash(&presented);
        match cache.get(&hash, view.now_ms) {
            Some(Ok(grant)) => self.auth = AuthState::Granted(grant),
            Some(Err(denial)) => return self.reply(effects, denial),
            None => {
                self.auth = AuthState::Pending(hash);
                let path = route::normalize_path(view.path);
                effects.push(Effect::CallAuth(auth::check_request(
                    &presented,
                    path,
                    &self.request_id,
                )));
            }
        }
        self.settle(effects, true)
    }

    /// A body chunk arrived; `body_size` is everything buffered so far. `read_body` is called
    /// (once) only when the complete body must be checked.
    pub fn on_request_body(
        &mut self,
        body_size: usize,
        end_of_stream: bool,
        read_body: impl FnOnce() -> Vec<u8>,
        config: &Config,
    ) -> Step {
        if self.done {
            return Step {
                effects: Vec::new(),
                flow: Flow::Continue,
            };
        }
        if u64::try_from(body_size).map_or(true, |size| size > config.max_body_bytes) {
            return self.reply(Vec::new(), LocalReply::too_large(config.max_body_bytes));
        }
        if !end_of_stream {
            return Step {
                effects: Vec::new(),
                flow: Flow::Pause,
            };
        }
        if matches!(self.body, BodyState::Buffering) {
            self.body = self.check_body(&read_body());
        }
        self.settle(Vec::new(), true)
    }

    /// Trailers end the request body as well.
    pub fn on_request_trailers(
        &mut self,
        read_body: impl FnOnce() -> Vec<u8>,
        config: &Config,
    ) -> Step {
        if self.done {
            return Step {
                effects: Vec::new(),
                flow: Flow::Continue,
            };
        }
        let body = read_body();
        self.on_request_body(body.len(), true, || body, config)
    }

    /// The `Auth/Check` call finished (outside any filter callback: passing means `Resume`).
    pub fn on_auth_answer(
        &mut self,
        answer: AuthAnswer,
        config: &Config,
        cache: &mut AuthCache,
        now_ms: u64,
    ) -> Vec<Effect> {
        let AuthState::Pending(hash) = self.auth else {
            return Vec::new();
        };
        let verdict = match answer {
            AuthAnswer::Answered(response) => {
                let verdict = auth::verdict(&response);
                // Cached even when this request has already been answered (e.g. 413).
                cache.insert(
                    hash,
                    verdict.clone(),
                    auth::cache_ttl_ms(&response, config),
                    now_ms,
                );
                verdict
            }
            AuthAnswer::Failed(_) => Err(LocalReply::auth_unavailable()),
        };
        if self.done {
            return Vec::new();
        }
        match verdict {
            Ok(grant) => self.auth = AuthState::Granted(grant),
            Err(reply) => return self.reply(Vec::new(), reply).effects,
        }
        self.settle(Vec::new(), false).effects
    }

    fn check_body(&self, bytes: &[u8]) -> BodyState {
        match body::check(bytes, self.route == Route::Messages) {
            Ok(facts) => BodyState::Checked(facts),
            Err(message) => BodyState::Rejected(LocalReply::invalid_request(message)),
        }
    }

    /// Passes the request once the key is granted and the body (if any) is checked.
    fn settle(&mut self, mut effects: Vec<Effect>, in_callback: bool) -> Step {
        let grant = match &self.auth {
            AuthState::Granted(grant) => grant.clone(),
            AuthState::Pending(_) | AuthState::NotNeeded => {
                return Step {
                    effects,
                    flow: Flow::Pause,
                };
            }
        };
        let facts = match &self.body {
            BodyState::Buffering => {
                return Step {
                    effects,
                    flow: Flow::Pause,
                };
            }
            BodyState::Rejected(reply) => {
                let reply = reply.clone();
                return self.reply(effects, reply);
            }
            BodyState::Checked(facts) => Some(facts.clone()),
            BodyState::NotNeeded => None,
        };
        effects.extend([
            Effect::SetHeader(headers::KEY_ID, grant.key_id),
            Effect::SetHeader(headers::TIER, grant.tier.to_owned()),
            Effect::SetHeader(headers::RPM, grant.requests_per_minute.to_string()),
            Effect::SetHeader(headers::TPM, grant.tokens_per_minute.to_string()),
        ]);
        if let Some(facts) = facts {
            effects.push(Effect::SetHeader(headers::MODEL, facts.model));
            effects.push(Effect::SetHeader(headers::STREAM, facts.stream.to_string()));
        }
        if !in_callback {
            effects.push(Effect::Resume);
        }
        self.done = true;
        Step {
            effects,
            flow: Flow::Continue,
        }
    }

    fn reply(&mut self, mut effects: Vec<Effect>, reply: LocalReply) -> Step {
        self.done = true;
        effects.push(Effect::SetHeader(headers::LOCAL_REPLY, "1".to_owned()));
        effects.push(Effect::Reply(Reply {
            status: reply.status,
            headers: reply.headers(&self.request_id),
            body: reply.body(&self.request_id),
        }));
        Step {
            effects,
            flow: Flow::Pause,
        }
    }
}

#[cfg(test)]
mod tests;
