//! `scopepilot.v1.Rules`: ListRules, PutRule, DeleteRule, ValidateRule. Rules travel as
//! TOML text; a rule that fails its checks is INVALID_ARGUMENT naming the key, and the rules
//! already running are untouched.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::daemon::Daemon;
use crate::proto::{self, rules_server::Rules};
use crate::rules::RuleError;
use crate::rules::RuleStatus;

/// Largest rule text accepted, bytes.
pub const MAX_RULE_BYTES: usize = 64 * 1024;

/// The Rules service.
pub struct RulesApi {
    daemon: Arc<Daemon>,
}

impl RulesApi {
    /// A service driving `daemon`'s rule engine.
    pub fn new(daemon: Arc<Daemon>) -> Self {
        Self { daemon }
    }
}

fn rule_to_proto(r: &RuleStatus) -> proto::Rule {
    proto::Rule {
        name: r.config.name.clone(),
        toml: r.config.to_toml(),
        events_matched: r.events_matched,
        triggers: r.triggers,
        suppressed: r.suppressed,
        releases: r.releases,
        active: r.active,
        dry_run: r.config.dry_run,
    }
}

fn invalid(e: RuleError) -> Status {
    Status::invalid_argument(format!("invalid rule: {e}"))
}

fn checked_text(text: &str) -> Result<&str, Status> {
    if text.len() > MAX_RULE_BYTES {
        return Err(Status::invalid_argument(format!(
            "rule text of {} bytes exceeds the maximum of {MAX_RULE_BYTES}",
            text.len()
        )));
    }
    Ok(text)
}

#[tonic::async_trait]
impl Rules for RulesApi {
    async fn list_rules(
        &self,
        _request: Request<proto::ListRulesRequest>,
    ) -> Result<Response<proto::ListRulesResponse>, Status> {
        let rules = self
            .daemon
            .rules()
            .list()
            .iter()
            .map(rule_to_proto)
            .collect();
        Ok(Response::new(proto::ListRulesResponse { rules }))
    }

    async fn put_rule(
        &self,
        request: Request<proto::PutRuleRequest>,
    ) -> Result<Response<proto::PutRuleResponse>, Status> {
        let r = request.into_inner();
        let (status, replaced) = self
            .daemon
            .rules()
            .put(checked_text(&r.toml)?)
            .map_err(invalid)?;
        Ok(Response::new(proto::PutRuleResponse {
            rule: Some(rule_to_proto(&status)),
            replaced,
        }))
    }

    async fn delete_rule(
        &self,
        request: Request<proto::DeleteRuleRequest>,
    ) -> Result<Response<proto::DeleteRuleResponse>, Status> {
        let name = request.into_inner().name;
        if self.daemon.rules().delete(&name) {
            Ok(Response::new(proto::DeleteRuleResponse {}))
        } else {
            let known: Vec<String> = self
                .daemon
                .rules()
                .list()
                .into_iter()
                .map(|r| r.config.name)
                .collect();
            Err(Status::not_found(format!(
                "no rule named {name:?}; rules: {}",
                if known.is_empty() {
                    "(none)".into()
                } else {
                    known.join(", ")
                }
            )))
        }
    }

    async fn validate_rule(
        &self,
        request: Request<proto::ValidateRuleRequest>,
    ) -> Result<Response<proto::ValidateRuleResponse>, Status> {
        let r = request.into_inner();
        let rule = self
            .daemon
            .rules()
            .validate(checked_text(&r.toml)?)
            .map_err(invalid)?;
        Ok(Response::new(proto::ValidateRuleResponse {
            name: rule.name,
        }))
    }
}
