//! Tokens over real gRPC: a missing or wrong token is `UNAUTHENTICATED`, a read-only token
//! on a call that changes something is `PERMISSION_DENIED`, a control token may do
//! everything, and health checks stay open for probes.

mod common;

use common::{SMALL, TestServer, push_u16, start, temp_dir};
use scopepilot::proto::acquisition_client::AcquisitionClient;
use scopepilot::proto::frames_client::FramesClient;
use scopepilot::proto::rules_client::RulesClient;
use scopepilot::proto::{
    GetStatusRequest, ListRulesRequest, PutRuleRequest, StopRequest, SubscribeFramesRequest,
};
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::Channel;

const CONTROL: &str = "c0ntrol-7f3a9e1b2d4c6f80";
const READ: &str = "read-5b8e2a6c9d1f3e70aa";

/// Adds `authorization: Bearer <token>` to every call (none when `None`).
#[derive(Clone)]
struct Bearer(Option<String>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            let value: MetadataValue<_> = format!("Bearer {t}").parse().unwrap();
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

type Intercepted = tonic::service::interceptor::InterceptedService<Channel, Bearer>;

async fn acquisition(server: &TestServer, token: Option<&str>) -> AcquisitionClient<Intercepted> {
    AcquisitionClient::with_interceptor(server.channel().await, Bearer(token.map(Into::into)))
}

async fn server_with_tokens() -> TestServer {
    // The control token from a file, as deployments should keep it.
    let dir = temp_dir("tokens");
    let file = dir.join("control.token");
    std::fs::write(&file, format!("{CONTROL}\n")).unwrap();
    TestServer::start(&format!(
        "{SMALL}\n[[security.tokens]]\ntoken_file = {:?}\nrole = \"control\"\n\
         [[security.tokens]]\ntoken = \"{READ}\"\nrole = \"read\"\n",
        file.display().to_string()
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_tokens_are_unauthenticated() {
    let server = server_with_tokens().await;
    for token in [None, Some("not-a-configured-token-at-all"), Some("")] {
        let mut c = acquisition(&server, token).await;
        let e = c.get_status(GetStatusRequest {}).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{token:?}: {e:?}");
        let e = c.start(start("simulated")).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{token:?}: {e:?}");
    }
    let mut c = acquisition(&server, None).await;
    let e = c.get_status(GetStatusRequest {}).await.unwrap_err();
    assert!(e.message().contains("Bearer"), "says how: {}", e.message());
    // Nothing was started by the refused calls.
    let status = acquisition(&server, Some(READ))
        .await
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.frames_acquired, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_token_watches_and_a_control_token_acts() {
    let server = server_with_tokens().await;
    let bearer = |t: &str| Bearer(Some(t.into()));
    let mut read = acquisition(&server, Some(READ)).await;
    let mut control = acquisition(&server, Some(CONTROL)).await;

    read.get_status(GetStatusRequest {}).await.unwrap();
    let e = read.start(start("simulated")).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("control token"), "{}", e.message());

    control.start(start("simulated")).await.unwrap();
    // Read may subscribe to frames and list rules, not change them or push frames.
    let mut frames_read = FramesClient::with_interceptor(server.channel().await, bearer(READ));
    let mut stream = frames_read
        .subscribe_frames(SubscribeFramesRequest {
            stage: "raw".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let frame = stream.message().await.unwrap().expect("a frame arrives");
    assert_eq!((frame.width, frame.height), (128, 128));
    drop(stream);
    let pixels = vec![0u16; 4 * 4];
    let e = frames_read
        .push_frames(tokio_stream::iter(vec![push_u16(0, 4, 4, &pixels)]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    let mut rules_read = RulesClient::with_interceptor(server.channel().await, bearer(READ));
    rules_read.list_rules(ListRulesRequest {}).await.unwrap();
    let e = rules_read
        .put_rule(PutRuleRequest {
            toml: "name = \"x\"".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    let e = read.stop(StopRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    control.stop(StopRequest {}).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_need_no_token_and_servers_without_tokens_need_none() {
    use tonic_health::pb::HealthCheckRequest;
    let server = server_with_tokens().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let r = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(r.is_ok(), "{r:?}");
    server.stop().await;

    let open = TestServer::start(SMALL).await;
    let mut c = acquisition(&open, None).await;
    c.get_status(GetStatusRequest {}).await.unwrap();
    c.start(start("simulated")).await.unwrap();
    c.stop(StopRequest {}).await.unwrap();
    // A token is simply ignored there.
    acquisition(&open, Some("anything"))
        .await
        .get_status(GetStatusRequest {})
        .await
        .unwrap();
    open.stop().await;
}

fn tls_file(name: &str) -> String {
    format!("{}/tests/data/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_client_that_trusts_the_certificate_gets_in_and_plain_text_does_not() {
    use tonic::transport::{Certificate, ClientTlsConfig};
    let server = TestServer::start(&format!(
        "{SMALL}\n[[security.tokens]]\ntoken = \"{CONTROL}\"\nrole = \"control\"\n\
         [security.tls]\ncert = {:?}\nkey = {:?}\n",
        tls_file("server.pem"),
        tls_file("server.key")
    ))
    .await;
    let ca = std::fs::read(tls_file("ca.pem")).unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://{}", server.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("TLS handshake with the test CA");
    let mut c = AcquisitionClient::with_interceptor(channel, Bearer(Some(CONTROL.into())));
    c.start(start("simulated")).await.unwrap();
    let status = c
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.source, "simulated");
    c.stop(StopRequest {}).await.unwrap();

    // Plain text to the TLS port: no gRPC answer.
    let plain = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(5))
        .connect_lazy();
    let e = AcquisitionClient::with_interceptor(plain, Bearer(Some(CONTROL.into())))
        .get_status(GetStatusRequest {})
        .await
        .unwrap_err();
    assert_ne!(e.code(), Code::Ok);
    // A client that does not trust the certificate is refused at the handshake.
    let untrusted = Channel::from_shared(format!("https://{}", server.addr))
        .unwrap()
        .tls_config(ClientTlsConfig::new().domain_name("localhost"))
        .unwrap()
        .connect()
        .await;
    assert!(untrusted.is_err(), "an unknown CA must not be trusted");
    server.stop().await;
}
