//! The etcd client, synchronous: each call runs on a current-thread
//! runtime of the caller's, bounded by `TIMEOUT`, and fails naming the
//! store's endpoints.

use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, PutOptions,
    TlsOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use ocinet_common::error::IoContext;
use ocinet_common::{Error, Result};

use crate::config::ClusterConfig;

/// The bound on connecting and on each request: well under a runtime's
/// hook timeout (runc has none by default, podman's is 30 s... crun
/// none), so a setup with the store unreachable fails in seconds.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// What a guarded transaction (`Store::delete_guarded`) requires of the
/// store when it runs, so that what a caller decided on a read still
/// holds when it acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// No key under the prefix.
    Empty(String),
    /// No key under the prefix was created or changed after the revision
    /// (one deleted since does not count: what is gone cannot be acted on).
    Unchanged(String, i64),
    /// The key does not exist.
    Absent(String),
    /// This one key (not a prefix) was not created or changed after the
    /// revision (deleted since counts as unchanged).
    KeyUnchanged(String, i64),
}

impl Guard {
    fn compare(&self) -> Compare {
        match self {
            // A range compare holds when every key in the range satisfies
            // it, and, for an empty range, when an absent key would
            // (version 0, revisions 0): so "no key" and "none newer".
            Guard::Empty(p) => {
                Compare::version(p.as_str(), CompareOp::Equal, 0).with_range(prefix_end(p))
            }
            Guard::Unchanged(p, rev) => {
                Compare::mod_revision(p.as_str(), CompareOp::Less, rev.saturating_add(1))
                    .with_range(prefix_end(p))
            }
            Guard::Absent(k) => Compare::version(k.as_str(), CompareOp::Equal, 0),
            Guard::KeyUnchanged(k, rev) => {
                Compare::mod_revision(k.as_str(), CompareOp::Less, rev.saturating_add(1))
            }
        }
    }
}

/// A key's value as read.
#[derive(Debug, Clone)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    /// The lease the key is on (0: none).
    pub lease: i64,
}

pub struct Store {
    rt: tokio::runtime::Runtime,
    client: Client,
    endpoints: String,
}

impl Store {
    /// Connect to the store `cfg` names (TLS when it names the files).
    pub fn connect(cfg: &ClusterConfig) -> Result<Store> {
        let endpoints = cfg.store.join(",");
        let _span = tracing::debug_span!("store_connect", %endpoints).entered();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Conflict(format!("cluster store: cannot start a runtime: {e}")))?;
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(TIMEOUT)
            .with_timeout(TIMEOUT)
            .with_keep_alive(Duration::from_secs(5), TIMEOUT);
        if let (Some(ca), Some(cert), Some(key)) = (&cfg.cacert, &cfg.cert, &cfg.key) {
            let read = |p: &std::path::PathBuf| std::fs::read(p).at(p);
            let tls = TlsOptions::new()
                .ca_certificate(Certificate::from_pem(read(ca)?))
                .identity(Identity::from_pem(read(cert)?, read(key)?));
            opts = opts.with_tls(tls);
        }
        let client = rt
            .block_on(async {
                tokio::time::timeout(TIMEOUT, Client::connect(&cfg.store, Some(opts))).await
            })
            .map_err(|_| unreachable_store(&endpoints, "no answer"))?
            .map_err(|e| unreachable_store(&endpoints, &e.to_string()))?;
        Ok(Store {
            rt,
            client,
            endpoints,
        })
    }

    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    fn failed(&self, op: &str, e: impl std::fmt::Display) -> Error {
        Error::Conflict(format!("cluster store {} ({op}): {e}", self.endpoints))
    }

    /// Run `f` against the client within `TIMEOUT`.
    fn call<T, F>(&mut self, op: &str, f: impl FnOnce(Client) -> F) -> Result<T>
    where
        F: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let _span = tracing::debug_span!("store", op).entered();
        let client = self.client.clone();
        match self
            .rt
            .block_on(async { tokio::time::timeout(TIMEOUT, f(client)).await })
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.failed(op, e)),
            Err(_) => Err(self.failed(op, format!("no answer within {} ms", TIMEOUT.as_millis()))),
        }
    }

    pub fn get(&mut self, key: &str) -> Result<Option<Kv>> {
        let k = key.to_string();
        let resp = self.call("get", |mut c| async move { c.get(k, None).await })?;
        Ok(resp.kvs().first().map(kv))
    }

    /// Every key under `prefix`, with the store's revision they were read at.
    pub fn list(&mut self, prefix: &str) -> Result<(Vec<Kv>, i64)> {
        let k = prefix.to_string();
        let resp = self.call("list", |mut c| async move {
            c.get(k, Some(GetOptions::new().with_prefix())).await
        })?;
        let rev = resp.header().map_or(0, |h| h.revision());
        Ok((resp.kvs().iter().map(kv).collect(), rev))
    }

    pub fn put(&mut self, key: &str, value: Vec<u8>, lease: Option<i64>) -> Result<()> {
        let k = key.to_string();
        self.call("put", |mut c| async move {
            let opts = lease.map(|l| PutOptions::new().with_lease(l));
            c.put(k, value, opts).await
        })
        .map(|_| ())
    }

    /// Put every pair only if none of the keys exists: whether they were.
    pub fn create_all(&mut self, pairs: &[(String, Vec<u8>)], lease: Option<i64>) -> Result<bool> {
        let compares: Vec<Compare> = pairs
            .iter()
            .map(|(k, _)| Compare::version(k.clone(), CompareOp::Equal, 0))
            .collect();
        let ops: Vec<TxnOp> = pairs
            .iter()
            .map(|(k, v)| {
                TxnOp::put(
                    k.clone(),
                    v.clone(),
                    lease.map(|l| PutOptions::new().with_lease(l)),
                )
            })
            .collect();
        let txn = Txn::new().when(compares).and_then(ops);
        let resp = self.call("create", |mut c| async move { c.txn(txn).await })?;
        Ok(resp.succeeded())
    }

    /// Put `value` at `key` if the key is absent or holds exactly
    /// `expected` now (a value of ours rewritten on a new lease).
    pub fn create_or_replace(
        &mut self,
        key: &str,
        value: Vec<u8>,
        expected: Option<&[u8]>,
        lease: Option<i64>,
    ) -> Result<bool> {
        let opts = || lease.map(|l| PutOptions::new().with_lease(l));
        let absent = Txn::new()
            .when([Compare::version(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.clone(), opts())]);
        if self
            .call("create", |mut c| async move { c.txn(absent).await })?
            .succeeded()
        {
            return Ok(true);
        }
        let Some(exp) = expected else {
            return Ok(false);
        };
        let same = Txn::new()
            .when([Compare::value(key, CompareOp::Equal, exp.to_vec())])
            .and_then([TxnOp::put(key, value, opts())]);
        Ok(self
            .call("replace", |mut c| async move { c.txn(same).await })?
            .succeeded())
    }

    /// Put `value` at `key` on `lease` if the key is absent or holds
    /// `value` already, and `side` (off any lease) in the same
    /// transaction, only while `requires` exists: whether it did (a block
    /// and its last holder, while their network is defined).
    pub fn claim(
        &mut self,
        key: &str,
        value: Vec<u8>,
        lease: i64,
        side: (String, Vec<u8>),
        requires: &str,
    ) -> Result<bool> {
        let defined = || Compare::version(requires, CompareOp::Greater, 0);
        let ops = || {
            [
                TxnOp::put(
                    key,
                    value.clone(),
                    Some(PutOptions::new().with_lease(lease)),
                ),
                TxnOp::put(side.0.clone(), side.1.clone(), None),
            ]
        };
        let absent = Txn::new()
            .when([Compare::version(key, CompareOp::Equal, 0), defined()])
            .and_then(ops());
        if self
            .call("claim", |mut c| async move { c.txn(absent).await })?
            .succeeded()
        {
            return Ok(true);
        }
        let ours = Txn::new()
            .when([
                Compare::value(key, CompareOp::Equal, value.clone()),
                defined(),
            ])
            .and_then(ops());
        Ok(self
            .call("claim", |mut c| async move { c.txn(ours).await })?
            .succeeded())
    }

    pub fn delete(&mut self, key: &str) -> Result<bool> {
        let k = key.to_string();
        let resp = self.call("delete", |mut c| async move { c.delete(k, None).await })?;
        Ok(resp.deleted() > 0)
    }

    /// Delete `key` only while it holds `expected` (it is still ours).
    pub fn delete_if(&mut self, key: &str, expected: &[u8]) -> Result<bool> {
        let txn = Txn::new()
            .when([Compare::value(key, CompareOp::Equal, expected.to_vec())])
            .and_then([TxnOp::delete(key, None)]);
        Ok(self
            .call("delete", |mut c| async move { c.txn(txn).await })?
            .succeeded())
    }

    /// Delete `key` while it holds `expected`, and `side` with it while
    /// `side` holds `expected` too, in one transaction: whether `key` was
    /// deleted (a block and its last holder: no crash between the two
    /// deletions can leave the holder behind).
    pub fn delete_with_side(&mut self, key: &str, side: &str, expected: &[u8]) -> Result<bool> {
        let side_txn = Txn::new()
            .when([Compare::value(side, CompareOp::Equal, expected.to_vec())])
            .and_then([TxnOp::delete(side, None)]);
        let txn = Txn::new()
            .when([Compare::value(key, CompareOp::Equal, expected.to_vec())])
            .and_then([TxnOp::delete(key, None), TxnOp::txn(side_txn)]);
        Ok(self
            .call("delete", |mut c| async move { c.txn(txn).await })?
            .succeeded())
    }

    /// Delete `key` while it holds `expected` and `absent` does not exist,
    /// in one transaction: whether it was deleted.
    pub fn delete_if_without(&mut self, key: &str, expected: &[u8], absent: &str) -> Result<bool> {
        let txn = Txn::new()
            .when([
                Compare::value(key, CompareOp::Equal, expected.to_vec()),
                Compare::version(absent, CompareOp::Equal, 0),
            ])
            .and_then([TxnOp::delete(key, None)]);
        Ok(self
            .call("delete", |mut c| async move { c.txn(txn).await })?
            .succeeded())
    }

    /// Every key under each of `prefixes`, read in one transaction, so
    /// all of them as of one revision (returned with them).
    pub fn snapshot(&mut self, prefixes: &[String]) -> Result<(Vec<Vec<Kv>>, i64)> {
        let ops: Vec<TxnOp> = prefixes
            .iter()
            .map(|p| TxnOp::get(p.clone(), Some(GetOptions::new().with_prefix())))
            .collect();
        let txn = Txn::new().and_then(ops);
        let resp = self.call("snapshot", |mut c| async move { c.txn(txn).await })?;
        let rev = resp.header().map_or(0, |h| h.revision());
        let mut out = Vec::with_capacity(prefixes.len());
        for r in resp.op_responses() {
            match r {
                TxnOpResponse::Get(g) => out.push(g.kvs().iter().map(kv).collect()),
                _ => return Err(self.failed("snapshot", "a read answered as another operation")),
            }
        }
        if out.len() != prefixes.len() {
            return Err(self.failed(
                "snapshot",
                format!("{} reads answered of {}", out.len(), prefixes.len()),
            ));
        }
        Ok((out, rev))
    }

    /// Delete every key of `keys` and every key under `prefixes` only
    /// while every guard holds, in one transaction: whether it did.
    pub fn delete_guarded(
        &mut self,
        keys: &[String],
        prefixes: &[String],
        guards: &[Guard],
    ) -> Result<bool> {
        let compares: Vec<Compare> = guards.iter().map(Guard::compare).collect();
        let mut ops: Vec<TxnOp> = keys
            .iter()
            .map(|k| TxnOp::delete(k.clone(), None))
            .collect();
        ops.extend(prefixes.iter().map(|p| {
            TxnOp::delete(
                p.clone(),
                Some(etcd_client::DeleteOptions::new().with_prefix()),
            )
        }));
        let txn = Txn::new().when(compares).and_then(ops);
        Ok(self
            .call("delete", |mut c| async move { c.txn(txn).await })?
            .succeeded())
    }

    pub fn lease_grant(&mut self, ttl: u32) -> Result<i64> {
        let r = self.call("lease grant", |mut c| async move {
            c.lease_grant(i64::from(ttl), None).await
        })?;
        Ok(r.id())
    }

    /// Seconds lease `id` has left (None: expired or unknown).
    pub fn lease_ttl(&mut self, id: i64) -> Result<Option<i64>> {
        let r = self.call("lease ttl", |mut c| async move {
            c.lease_time_to_live(id, None).await
        })?;
        Ok((r.ttl() > 0).then_some(r.ttl()))
    }

    /// One keep-alive of lease `id`: the seconds it has now (None: it
    /// expired meanwhile).
    pub fn keep_alive(&mut self, id: i64) -> Result<Option<i64>> {
        let r = self.call("keep alive", |mut c| async move {
            let (mut keeper, mut stream) = c.lease_keep_alive(id).await?;
            keeper.keep_alive().await?;
            stream.message().await
        })?;
        Ok(r.map(|r| r.ttl()).filter(|t| *t > 0))
    }

    pub fn lease_revoke(&mut self, id: i64) -> Result<()> {
        self.call(
            "lease revoke",
            |mut c| async move { c.lease_revoke(id).await },
        )
        .map(|_| ())
    }

    /// Wait until a key under `prefix` changes after `revision`, at most
    /// `wait`: whether one did. A store that cannot be watched fails.
    pub fn wait_change(&mut self, prefix: &str, revision: i64, wait: Duration) -> Result<bool> {
        let k = prefix.to_string();
        let _span = tracing::trace_span!("store_watch").entered();
        let client = self.client.clone();
        let r = self.rt.block_on(async move {
            let mut c = client;
            let opts = WatchOptions::new()
                .with_prefix()
                .with_start_revision(revision + 1);
            let mut stream = tokio::time::timeout(TIMEOUT, c.watch(k, Some(opts)))
                .await
                .map_err(|_| "no answer".to_string())?
                .map_err(|e| e.to_string())?;
            // The stream's first message is etcd's "created" answer, with
            // no events (etcd-client 0.21 does not consume it): returning
            // on it made every wait end at once and the agent spin. Wait
            // for events (or a cancel: a compacted revision) until `wait`.
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                match tokio::time::timeout_at(deadline, stream.message()).await {
                    Err(_) => return Ok(false),
                    Ok(Ok(Some(m))) if !m.events().is_empty() || m.canceled() => return Ok(true),
                    Ok(Ok(Some(_))) => {}
                    Ok(Ok(None)) => return Err("the watch ended".to_string()),
                    Ok(Err(e)) => return Err(e.to_string()),
                }
            }
        });
        r.map_err(|e| self.failed("watch", e))
    }
}

fn kv(k: &etcd_client::KeyValue) -> Kv {
    Kv {
        key: String::from_utf8_lossy(k.key()).into_owned(),
        value: k.value().to_vec(),
        lease: k.lease(),
    }
}

fn unreachable_store(endpoints: &str, why: &str) -> Error {
    Error::Conflict(format!(
        "cluster store {endpoints} cannot be reached within {} ms: {why}",
        TIMEOUT.as_millis()
    ))
}

/// The end of the key range of `prefix` (etcd's range_end for a prefix).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Whether `e` is the store refusing a lease it no longer has (etcd's
/// `ErrGRPCLeaseNotFound`): the lease expired while this host could not
/// reach the store, and its agent has not registered again yet.
pub fn lease_gone(e: &Error) -> bool {
    matches!(e, Error::Conflict(m) if m.contains("requested lease not found"))
}
