//! A tonic service served like any tower service: gRPC health checks over
//! HTTP/2, a health status that turns to NOT_SERVING when the drain begins,
//! and a streaming call cut short by the drain, with its reason reported.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use common::{Connector, in_memory};
use hyper_util::rt::TokioIo;
use tethered::Scope;
use tethered_hyper::Server;
use tokio::io::DuplexStream;
use tokio::time::{Instant, sleep};
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_health::ServingStatus;
use tonic_health::pb::health_check_response::ServingStatus as Status;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// Connects tonic's channel to the in-memory listener.
impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<DuplexStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let connected = self.connect();
        Box::pin(async move {
            let (io, _) = connected.ok_or(std::io::ErrorKind::ConnectionRefused)?;
            Ok(TokioIo::new(io))
        })
    }
}

async fn channel(connector: Connector) -> Channel {
    Endpoint::from_static("http://in-memory")
        .connect_with_connector(connector)
        .await
        .unwrap()
}

fn overall() -> HealthCheckRequest {
    HealthCheckRequest {
        service: String::new(),
    }
}

fn status(response: &HealthCheckResponse) -> Status {
    Status::try_from(response.status).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_tonic_service_is_served_in_the_tree_and_its_health_turns_with_the_drain() {
    let (listener, connector) = in_memory();
    let (reporter, health) = tonic_health::server::health_reporter();
    let routes = tonic::service::Routes::new(health);
    let server = Server::new(listener)
        .name("grpc")
        .grace(Duration::from_secs(2))
        .cancel_timeout(Duration::from_secs(1));
    let readiness = server.readiness();
    let started = Instant::now();
    let served = Scope::run(async |scope| {
        let server = scope.spawn(server.serve(routes));
        // Told rather than asked: NOT_SERVING from the moment the stop comes.
        scope.spawn(async move {
            readiness.draining().await;
            reporter
                .set_service_status("", ServingStatus::NotServing)
                .await;
        });

        let mut client = HealthClient::new(channel(connector).await);
        let checked = client.check(overall()).await.unwrap().into_inner();
        assert_eq!(status(&checked), Status::Serving);
        let mut watching = client.watch(overall()).await.unwrap().into_inner();
        assert_eq!(
            status(&watching.message().await.unwrap().unwrap()),
            Status::Serving
        );
        sleep(Duration::from_secs(1)).await;

        scope.stop("deploy");
        // The call in flight hears of the drain…
        let update = watching.message().await.unwrap().unwrap();
        assert_eq!(status(&update), Status::NotServing);
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        // … and is cut short when the grace is over.
        assert!(watching.message().await.is_err());
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        server.join().await.unwrap().unwrap()
    })
    .await
    .unwrap();
    let requests = served.requests();
    assert_eq!((requests.started, requests.completed), (2, 1), "{requests}");
    assert_eq!(requests.cancelled.len(), 1, "{requests}");
    let watch = &requests.cancelled[0];
    assert_eq!(
        (watch.method().as_str(), watch.path()),
        ("POST", "/grpc.health.v1.Health/Watch")
    );
    // Its handler returned the stream at once: the request lasted as long
    // as its body did.
    assert_eq!(watch.age(), Duration::from_secs(3));
}
