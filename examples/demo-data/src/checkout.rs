//! The checkout: exchange rates from the demo's own `GET /api/rates`, fetched over HTTP
//! with reqwest through Backstop's middleware, kept in a small in-memory cache whose
//! reads and writes are cache spans. The first checkout misses and calls; later ones
//! hit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde::Serialize;

/// The cache key of the rates.
const RATES_KEY: &str = "rates:EUR";

/// How long `GET /api/rates` takes.
pub const RATES_DELAY: Duration = Duration::from_millis(50);

/// The rates `GET /api/rates` answers, after [`RATES_DELAY`].
pub async fn rates() -> serde_json::Value {
    tokio::time::sleep(RATES_DELAY).await;
    serde_json::json!({ "base": "EUR", "USD": 1.08, "GBP": 0.85, "JPY": 162.4 })
}

/// A checkout's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checkout {
    /// The basket's total in EUR.
    pub total_eur: f64,
    /// The same in USD, at the current rate.
    pub total_usd: f64,
    /// Whether the rates came from the cache.
    pub cached: bool,
}

/// Why a checkout failed: the rates service did not answer well.
#[derive(Debug)]
pub struct RatesError(pub Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for RatesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the exchange rates could not be fetched")
    }
}

impl std::error::Error for RatesError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// The rates client and its cache; one per app.
pub struct Rates {
    http: ClientWithMiddleware,
    cache: Mutex<HashMap<String, String>>,
}

impl Default for Rates {
    fn default() -> Self {
        Rates::new()
    }
}

impl Rates {
    /// An empty cache, and a client that calls through Backstop's middleware.
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Rates {
            http: ClientBuilder::new(client)
                .with(backstop_core::reqwest::Tracing::new())
                .build(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Prices a basket of 42 EUR in USD, with the rates of the demo served at `own`.
    pub async fn checkout(&self, own: SocketAddr) -> Result<Checkout, RatesError> {
        let (rates, cached) = match self.cached() {
            Some(rates) => (rates, true),
            None => (self.fetch(own).await?, false),
        };
        let rates: serde_json::Value =
            serde_json::from_str(&rates).map_err(|e| RatesError(e.into()))?;
        let usd = rates["USD"].as_f64().unwrap_or(1.0);
        Ok(Checkout {
            total_eur: 42.0,
            total_usd: (42.0 * usd * 100.0).round() / 100.0,
            cached,
        })
    }

    fn cached(&self) -> Option<String> {
        let mut span = backstop_core::cache::get(RATES_KEY);
        let found = self.lock().get(RATES_KEY).cloned();
        span.hit(found.is_some());
        if let Some(rates) = &found {
            span.item_size(rates.len() as u64);
        }
        found
    }

    async fn fetch(&self, own: SocketAddr) -> Result<String, RatesError> {
        let response = self
            .http
            .get(format!("http://{own}/api/rates"))
            .send()
            .await
            .and_then(|r| r.error_for_status().map_err(Into::into))
            .map_err(|e| RatesError(e.into()))?;
        let body = response.text().await.map_err(|e| RatesError(e.into()))?;
        let mut span = backstop_core::cache::put(RATES_KEY);
        span.item_size(body.len() as u64);
        self.lock().insert(RATES_KEY.to_owned(), body.clone());
        Ok(body)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}
