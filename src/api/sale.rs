//! The sale's front half: the captcha (drawn on a worker) and the hidden
//! path (checked and minted on the loop: window, captcha, HMAC).

use rand::RngExt;
use seckill_protocol::Status;
use serde::Deserialize;

use super::{json_body, json_now, push_u64};
use crate::api_error::ApiError;
use crate::app::{App, Counters};
use crate::auth::path::PathSigner;
use crate::cache::{CaptchaEntry, PutCaptchaError};
use crate::captcha;
use crate::catalogue::SaleState;
use crate::handler::{Call, LoopHandler, Outcome, Pool};
use crate::reply::Reply;

/// `{"captcha": "13"}`; a number is accepted too.
#[derive(Deserialize)]
struct PathRequest {
    captcha: serde_json::Value,
}

impl PathRequest {
    /// The answer given: `None` for text or a number that is no integer (a
    /// wrong answer). A field that is neither string nor number is a
    /// malformed body, refused before the captcha is looked at (and consumed).
    fn answer(&self) -> Result<Option<i64>, ApiError> {
        match &self.captcha {
            serde_json::Value::String(s) => Ok(s.trim().parse().ok()),
            serde_json::Value::Number(n) => Ok(n.as_i64()),
            _ => Err(ApiError::InvalidInput("captcha: the answer, as a string or a number")),
        }
    }
}

/// The body of `POST /api/items/{id}/path`, parsed and read as the
/// endpoint does before it looks at the captcha (for [`super::parse_body`]).
pub(super) fn parse_path_request(body: &[u8]) -> Result<(), ApiError> {
    json_body::<PathRequest>(body)?.answer().map(drop)
}

impl LoopHandler {
    pub(crate) fn captcha(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        let (_, session) = self.session(call)?;
        self.limit_ip(call)?;
        self.limit_user(session.user_id, call)?;
        let item_id = call.matched.id;
        if self.catalogue.get(item_id).is_none() {
            return Err(ApiError::NoSuchItem);
        }
        let expires_ms = call.now_ms + self.app.settings.captcha_ttl_ms;
        self.offload(call, Pool::General, move |app| {
            let mut rng = rand::rng();
            let question = captcha::generate(&mut rng);
            let png = captcha::render_png(&question.text, rng.random());
            let entry = CaptchaEntry { answer: question.answer, expires_ms };
            app.cache.put_captcha(session.user_id, item_id, entry).map_err(|e| match e {
                PutCaptchaError::Full => ApiError::Overloaded,
                PutCaptchaError::Unavailable(_) => ApiError::Unavailable,
            })?;
            Counters::bump(&app.counters.captchas_issued);
            Ok(Reply::png(png))
        })
    }

    pub(crate) fn sale_path(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        let (_, session) = self.session(call)?;
        self.limit_ip(call)?;
        self.limit_user(session.user_id, call)?;
        let request: PathRequest = json_body(call.request.body)?;
        let answer = request.answer()?;
        let now_ms = call.now_ms;
        let item_id = call.matched.id;
        let item = self.catalogue.get(item_id).ok_or(ApiError::NoSuchItem)?;
        match item.state(now_ms) {
            SaleState::Upcoming => return Err(ApiError::NotStarted),
            SaleState::Ended => return Err(ApiError::Ended),
            SaleState::Active | SaleState::SoldOut => {}
        }
        // Any answer consumes the captcha, right or wrong.
        let Some(outstanding) = self.app.cache.take_captcha_now(session.user_id, item_id) else {
            // A shared cache: a worker takes it (GETDEL) and mints the path.
            let signer = self.path_signer.clone();
            return self.offload(call, Pool::General, move |app| {
                let outstanding =
                    app.cache.take_captcha(session.user_id, item_id).map_err(|_| ApiError::Unavailable)?;
                let (path, expires_ms) = judge(app, &signer, outstanding, answer, session.user_id, item_id, now_ms)?;
                Ok(Reply::json_value(Status::OK, &serde_json::json!({ "path": path, "expires_ms": expires_ms })))
            });
        };
        let (path, expires_ms) =
            judge(&self.app, &self.path_signer, outstanding, answer, session.user_id, item_id, now_ms)?;
        json_now(call, Status::OK, |out| {
            out.extend_from_slice(b"{\"path\":\"");
            out.extend_from_slice(path.as_bytes());
            out.extend_from_slice(b"\",\"expires_ms\":");
            push_u64(out, expires_ms);
            out.push(b'}');
        })
    }
}

/// The captcha taken for (user, item) against the `answer` given: the
/// hidden path and its expiry when right, the refusal otherwise.
fn judge(
    app: &App,
    signer: &PathSigner,
    outstanding: Option<CaptchaEntry>,
    answer: Option<i64>,
    user_id: u64,
    item_id: u64,
    now_ms: u64,
) -> Result<(String, u64), ApiError> {
    let counters = &app.counters;
    let Some(captcha) = outstanding.filter(|c| now_ms < c.expires_ms) else {
        Counters::bump(&counters.captchas_expired);
        return Err(ApiError::CaptchaExpired);
    };
    if answer != Some(captcha.answer) {
        Counters::bump(&counters.captchas_wrong);
        return Err(ApiError::CaptchaWrong);
    }
    Counters::bump(&counters.captchas_right);
    Counters::bump(&counters.paths_issued);
    let expires_ms = now_ms + app.settings.path_ttl_ms;
    Ok((signer.mint(user_id, item_id, expires_ms), expires_ms))
}
