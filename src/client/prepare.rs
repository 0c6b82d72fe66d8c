//! The body of one attempt for its target: the request as it came but for the model, or
//! adapted to the target's rules by the model catalogue when it falls back ([`Prepared`]);
//! and the safety net, one resend in the minimal safe form after a fallback's 400.

use super::ClaudeClient;
use super::route::Route;
use super::vertex::VertexRoute;
use crate::api::ErrorType;
use crate::api::WireRequest;
use crate::api::adapt::{self, Verdict};
use crate::api::json::{Chunks, ObjectEdit};
use crate::catalog::AdaptMode;
use crate::engine::{Class, Failure, Target};

/// An attempt's body, and what was changed in it for its target.
pub(super) struct Prepared {
    pub(super) body: Chunks,
    pub(super) changes: Vec<&'static str>,
    /// Whether this is the second, minimal form sent after a refusal.
    resent: bool,
}

impl ClaudeClient {
    /// The body of an attempt of `request` at `target`: as it came but for the model, or
    /// adapted to the target's rules when it is not the model asked for (see
    /// [`adapt::adapt`]). A target that cannot take the request is a [`Class::Unsuitable`]
    /// failure, as is one that would need adapting under `adapt = "skip"`.
    pub(super) fn prepare(
        &self,
        target: &Target,
        route: Route<'_>,
        request: &WireRequest,
        stream: bool,
    ) -> Result<Prepared, Failure> {
        if let Some(why) = route
            .platform()
            .and_then(|platform| adapt::platform_refusal(platform, request.body()))
        {
            return Err(Failure::new(Class::Unsuitable, format!("{target}: {why}")));
        }
        let verdict = match self.catalog.get(target.model()) {
            Some(spec) if target.model() != request.model() => {
                adapt::adapt(request.body(), self.catalog.get(request.model()), spec)
                    .unwrap_or(Verdict::Same)
            }
            _ => Verdict::Same,
        };
        let (mut edit, changes) = match verdict {
            Verdict::Same => (ObjectEdit::new(), Vec::new()),
            Verdict::Refused(why) => return Err(Failure::new(Class::Unsuitable, why)),
            Verdict::Adapted { .. } if request.adapt().unwrap_or(self.adapt) == AdaptMode::Skip => {
                let message = format!(
                    "{} would need the request adapted, and adapt = \"skip\"",
                    target.model()
                );
                return Err(Failure::new(Class::Unsuitable, message));
            }
            Verdict::Adapted { edit, changes } => (edit, changes),
        };
        for change in &changes {
            metrics::counter!("breakwater_adapt_changes_total", "change" => *change).increment(1);
        }
        // The platform's shape: Vertex AI takes the model in the URL and its version in the
        // body; Bedrock and the Claude API take the model in the body, by their own ids.
        let model = match route {
            Route::Vertex(_) => {
                edit.remove("model");
                if let Some(version) = VertexRoute::body_version(request) {
                    edit.set("anthropic_version", &version);
                }
                request.model()
            }
            Route::Claude | Route::Bedrock(_) => self.model_on(target, route),
        };
        let body = request.body_with(model, stream, edit).map_err(|error| {
            Failure::new(Class::Invalid, format!("cannot build the body: {error}"))
        })?;
        Ok(Prepared {
            body,
            changes,
            resent: false,
        })
    }

    /// The safety net for what the catalogue does not know: a fallback target that refused
    /// an attempt with 400 `invalid_request_error` gets one more, in the minimal safe form
    /// (see [`adapt::minimal`]), when that form differs. Never for the model asked for on
    /// the Claude API (its own 400 comes back as it came), never twice.
    pub(super) fn safer(
        &self,
        target: &Target,
        request: &WireRequest,
        sent: &Prepared,
        failure: &Failure,
    ) -> Option<Prepared> {
        let refused = failure.status() == Some(400)
            && failure.error_type() == Some(ErrorType::InvalidRequest.as_str());
        // The model asked for is the model on the Claude API: the same model on another
        // platform is a fallback (another account, where thinking blocks of some models do
        // not verify), so its 400 gets the resend too.
        let asked_for = target.model() == request.model() && target.upstream().is_none();
        if !refused || sent.resent || asked_for {
            return None;
        }
        let body = sent.body.join();
        let verdict = adapt::minimal(&body, self.catalog.get(target.model())).ok()??;
        let Verdict::Adapted { edit, changes } = verdict else {
            return None;
        };
        let body = edit.apply(&body).ok()?;
        metrics::counter!("breakwater_adapt_resends_total").increment(1);
        let mut all = sent.changes.clone();
        all.extend(changes);
        all.sort_unstable();
        all.dedup();
        Some(Prepared {
            body,
            changes: all,
            resent: true,
        })
    }
}
