//! Who may call what: bearer tokens with a `read` or a `control` role (`[security]`).
//!
//! Without tokens every caller may do everything, which is only allowed on loopback addresses
//! unless `security.allow_insecure_remote` says otherwise (see [`SecurityConfig::problems`]).
//! With tokens, every gRPC call and HTTP request needs one: `read` may watch (status,
//! subscriptions, listings, the preview page, metrics), `control` may also change things
//! (start, stop, push frames, rules, models, recordings, camera settings). gRPC health checks
//! stay open, for probes. Tokens are compared by their SHA-256 digests in constant time.
//! [`Security`] bundles the tokens with the TLS identity (`[security.tls]`, [`crate::tls`]).

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::tls::{TlsConfig, TlsIdentity};

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Watch: status, subscriptions, listings, the preview page, metrics.
    Read,
    /// Watch and change: everything.
    Control,
}

/// One token (`[[security.tokens]]`): the secret inline or in a file, and its role.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The secret itself (prefer `token_file`: config files get shared).
    #[serde(default)]
    pub token: Option<String>,
    /// A file holding the secret (surrounding whitespace ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// `read` or `control`.
    pub role: Role,
}

/// `[security]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Bearer tokens; none = no authentication (loopback only, unless allowed below).
    pub tokens: Vec<TokenConfig>,
    /// Accept listening on a non-loopback address without tokens (logged as a warning).
    pub allow_insecure_remote: bool,
    /// TLS for the gRPC API and the HTTP side; unset = plain text.
    pub tls: Option<TlsConfig>,
}

/// Shortest secret accepted: guessing must be hopeless.
pub const MIN_TOKEN_CHARS: usize = 16;

impl SecurityConfig {
    /// Every problem as `(key, problem)`, keys relative to `security`. Reads token files.
    /// `remote` lists the non-loopback listen addresses as `(key, address)`.
    pub fn problems(&self, remote: &[(&str, String)]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, t) in self.tokens.iter().enumerate() {
            if let Err((key, problem)) = t.secret() {
                out.push((format!("tokens[{i}].{key}"), problem));
            }
        }
        if let Some(Err((key, problem))) = self.tls.as_ref().map(TlsIdentity::load) {
            out.push((format!("tls.{key}"), problem));
        }
        if self.tokens.is_empty()
            && !self.allow_insecure_remote
            && let Some((key, addr)) = remote.first()
        {
            out.push((
                "allow_insecure_remote".into(),
                format!(
                    "{key} = {addr:?} is reachable from the network and no security.tokens are \
                     configured, so anyone there could control the microscope: add tokens, \
                     listen on 127.0.0.1, or set allow_insecure_remote = true to accept the risk"
                ),
            ));
        }
        out
    }
}

/// Longest token file read, bytes: a token is one line, and a config pointing at a device or
/// a huge file must get an error, not hang or fill memory.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// The text of a token file: a regular file of at most [`MAX_TOKEN_FILE_BYTES`].
fn read_token_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut text = String::new();
    file.take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if text.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(format!(
            "longer than {MAX_TOKEN_FILE_BYTES} bytes; a token file holds one token"
        ));
    }
    Ok(text)
}

impl TokenConfig {
    /// The secret, or `(key, problem)`.
    fn secret(&self) -> Result<String, (&'static str, String)> {
        let secret = match (&self.token, &self.token_file) {
            (Some(t), None) => t.trim().to_string(),
            (None, Some(path)) => read_token_file(path)
                .map_err(|problem| ("token_file", format!("{}: {problem}", path.display())))?
                .trim()
                .to_string(),
            _ => {
                return Err((
                    "token",
                    "give exactly one of token and token_file".to_string(),
                ));
            }
        };
        let key = if self.token.is_some() {
            "token"
        } else {
            "token_file"
        };
        if secret.chars().count() < MIN_TOKEN_CHARS {
            return Err((
                key,
                format!(
                    "the token has {} characters; use at least {MIN_TOKEN_CHARS} random ones \
                     (e.g. `openssl rand -hex 32`)",
                    secret.chars().count()
                ),
            ));
        }
        if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err((
                key,
                "the token must not contain whitespace or control characters".into(),
            ));
        }
        Ok(secret)
    }
}

/// What both servers enforce: the tokens and, when configured, TLS.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// Who may call what.
    pub access: Arc<Access>,
    /// The certificate and key both servers present; `None` = plain text.
    pub tls: Option<TlsIdentity>,
}

impl Security {
    /// Load tokens and TLS files of `config`; errors name the key (`security.…`).
    pub fn from_config(config: &SecurityConfig) -> Result<Self, (String, String)> {
        let access = Arc::new(Access::from_config(config)?);
        let tls = config
            .tls
            .as_ref()
            .map(TlsIdentity::load)
            .transpose()
            .map_err(|(key, problem)| (format!("security.tls.{key}"), problem))?;
        Ok(Self { access, tls })
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No `Authorization: Bearer` credential (gRPC `UNAUTHENTICATED`, HTTP 401).
    #[error("this scopepilot requires a token: send `authorization: Bearer <token>`")]
    Missing,
    /// A token that is not configured (gRPC `UNAUTHENTICATED`, HTTP 401).
    #[error("the token is not valid")]
    Unknown,
    /// A read-only token on a call that changes something (gRPC `PERMISSION_DENIED`, 403).
    #[error("this token may only read; the call needs a control token")]
    ReadOnly,
}

/// The configured tokens, ready to check requests against.
#[derive(Debug, Clone, Default)]
pub struct Access {
    tokens: Vec<([u8; 32], Role)>,
}

impl Access {
    /// Load the tokens of `config` (reads token files); errors name the key.
    pub fn from_config(config: &SecurityConfig) -> Result<Self, (String, String)> {
        let tokens = config
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.secret()
                    .map(|s| (digest(&s), t.role))
                    .map_err(|(key, problem)| (format!("security.tokens[{i}].{key}"), problem))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { tokens })
    }

    /// Whether requests need a token at all.
    pub fn required(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Check the credential `presented` (the bare token) for a request that needs `need`.
    pub fn check(&self, presented: Option<&str>, need: Role) -> Result<(), Denied> {
        if !self.required() {
            return Ok(());
        }
        let presented = presented.ok_or(Denied::Missing)?;
        let d = digest(presented);
        // Look at every entry, so that timing says nothing about which one matched.
        let mut role = None;
        for (known, r) in &self.tokens {
            if constant_time_eq(known, &d) {
                role = role.max(Some(*r));
            }
        }
        match role {
            None => Err(Denied::Unknown),
            Some(r) if r < need => Err(Denied::ReadOnly),
            Some(_) => Ok(()),
        }
    }
}

/// The token in an `Authorization: Bearer <token>` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// gRPC calls that only read; every other `scopepilot.v1` call needs `control`, so a new RPC
/// is protected until it is listed here.
const READ_ONLY_METHODS: &[&str] = &[
    "/scopepilot.v1.Acquisition/GetStatus",
    "/scopepilot.v1.Frames/SubscribeFrames",
    "/scopepilot.v1.Events/SubscribeEvents",
    "/scopepilot.v1.Events/SubscribeActions",
    "/scopepilot.v1.Events/ListGroundTruth",
    "/scopepilot.v1.Models/ListModels",
    "/scopepilot.v1.Rules/ListRules",
    "/scopepilot.v1.Rules/ValidateRule",
];

/// The role a gRPC call (its HTTP/2 path, `/package.Service/Method`) needs; `None` for the
/// health service, which probes use without credentials.
pub fn grpc_role(path: &str) -> Option<Role> {
    if path.starts_with("/grpc.health.v1.Health/") {
        None
    } else if path.starts_with("/grpc.reflection.") || READ_ONLY_METHODS.contains(&path) {
        Some(Role::Read)
    } else {
        Some(Role::Control)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTROL: &str = "control-0123456789abcdef";
    const READ: &str = "read-0123456789abcdef";

    fn access() -> Access {
        let cfg: SecurityConfig = toml::from_str(&format!(
            "[[tokens]]\ntoken = \"{CONTROL}\"\nrole = \"control\"\n\
             [[tokens]]\ntoken = \"{READ}\"\nrole = \"read\"\n"
        ))
        .unwrap();
        assert!(cfg.problems(&[]).is_empty());
        Access::from_config(&cfg).unwrap()
    }

    #[test]
    fn roles_allow_what_they_say() {
        let a = access();
        assert_eq!(a.check(Some(CONTROL), Role::Control), Ok(()));
        assert_eq!(a.check(Some(CONTROL), Role::Read), Ok(()));
        assert_eq!(a.check(Some(READ), Role::Read), Ok(()));
        assert_eq!(a.check(Some(READ), Role::Control), Err(Denied::ReadOnly));
        assert_eq!(a.check(None, Role::Read), Err(Denied::Missing));
        assert_eq!(a.check(Some("guess"), Role::Read), Err(Denied::Unknown));
        assert_eq!(
            a.check(Some(&CONTROL[..CONTROL.len() - 1]), Role::Read),
            Err(Denied::Unknown)
        );
        assert_eq!(
            Access::default().check(None, Role::Control),
            Ok(()),
            "no tokens: no checks"
        );
    }

    #[test]
    fn bearer_headers_are_parsed_strictly() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }

    #[test]
    fn every_rpc_in_the_protos_is_classified_and_only_listed_ones_read() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/proto/scopepilot/v1");
        let mut reads = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let mut service = "";
            for line in text.lines().map(str::trim) {
                if let Some(rest) = line.strip_prefix("service ") {
                    service = rest.trim_end_matches('{').trim();
                } else if let Some(rest) = line.strip_prefix("rpc ") {
                    let method = rest.split('(').next().unwrap().trim();
                    let path = format!("/scopepilot.v1.{service}/{method}");
                    let role = grpc_role(&path).unwrap();
                    let reads_only = method.starts_with("Get")
                        || method.starts_with("List")
                        || method.starts_with("Subscribe")
                        || method.starts_with("Validate");
                    assert_eq!(role == Role::Read, reads_only, "{path}: {role:?}");
                    reads += usize::from(role == Role::Read);
                }
            }
        }
        assert_eq!(reads, READ_ONLY_METHODS.len(), "every listed method exists");
        assert_eq!(grpc_role("/grpc.health.v1.Health/Check"), None);
        assert_eq!(
            grpc_role("/scopepilot.v1.Future/Anything"),
            Some(Role::Control)
        );
    }

    #[test]
    fn bad_tokens_and_open_remote_listeners_name_the_key() {
        let parse = |t: &str| toml::from_str::<SecurityConfig>(t).unwrap();
        let short = parse("[[tokens]]\ntoken = \"abc\"\nrole = \"read\"");
        assert_eq!(short.problems(&[])[0].0, "tokens[0].token");
        let both = parse(
            "[[tokens]]\ntoken = \"0123456789abcdefgh\"\ntoken_file = \"/x\"\nrole = \"read\"",
        );
        assert_eq!(both.problems(&[])[0].0, "tokens[0].token");
        let missing = parse("[[tokens]]\ntoken_file = \"/nonexistent/token\"\nrole = \"control\"");
        let p = missing.problems(&[]);
        assert_eq!(p[0].0, "tokens[0].token_file");
        assert!(p[0].1.contains("/nonexistent/token"), "{p:?}");
        // A device or a huge file is refused without hanging or filling memory.
        let device = parse("[[tokens]]\ntoken_file = \"/dev/zero\"\nrole = \"read\"");
        assert!(device.problems(&[])[0].1.contains("not a regular file"));
        let big = std::env::temp_dir().join(format!("scopepilot-big-token-{}", std::process::id()));
        std::fs::write(&big, "a".repeat(5000)).unwrap();
        let huge = parse(&format!(
            "[[tokens]]\ntoken_file = {:?}\nrole = \"read\"",
            big
        ));
        let p = huge.problems(&[]);
        std::fs::remove_file(&big).unwrap();
        assert!(p[0].1.contains("longer than 4096 bytes"), "{p:?}");
        assert!(
            toml::from_str::<SecurityConfig>("[[tokens]]\ntoken = \"x\"\nrole = \"admin\"")
                .is_err()
        );

        let remote = [("api.listen", "0.0.0.0:50051".to_string())];
        let open = SecurityConfig::default();
        let p = open.problems(&remote);
        assert_eq!(p[0].0, "allow_insecure_remote");
        assert!(p[0].1.contains("0.0.0.0:50051"), "{p:?}");
        let allowed = parse("allow_insecure_remote = true");
        assert!(allowed.problems(&remote).is_empty());
        assert!(open.problems(&[]).is_empty(), "loopback needs nothing");
    }
}
