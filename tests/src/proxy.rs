//! A TCP proxy the test controls, between a worker and its server: it forwards every connection until it is cut,
//! and from then on the server is out of reach as behind a network partition (open connections closed, new ones
//! refused).

use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Forwards `127.0.0.1:{port}` to a local port; cut when dropped.
pub struct TcpProxy {
    pub port: u16,
    accept: JoinHandle<()>,
    connections: Arc<Mutex<JoinSet<()>>>,
}

impl TcpProxy {
    /// A proxy on a free port to `127.0.0.1:{target}`.
    pub async fn start(target: u16) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port for the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let open = connections.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut open = open.lock().expect("the proxy's connections");
                while open.try_join_next().is_some() {}
                open.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        TcpProxy { port, accept, connections }
    }

    /// `http://127.0.0.1:{port}`: the proxied server's URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Closes every open connection and stops listening, so that new connections are refused.
    pub fn cut(&self) {
        self.accept.abort();
        self.connections.lock().expect("the proxy's connections").abort_all();
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
    }
}
