//! [`MysqlStore`]: the [`Store`] on MySQL or MariaDB, for many instances
//! sharing one database.
//!
//! **Threading.** mysql_async is asynchronous and the [`Store`] trait is not:
//! the store owns one thread running a current-thread tokio runtime with the
//! connection pool (`store.pool_max` connections). Each method sends a job
//! over a bounded channel to that thread and blocks on the reply with a
//! timeout, so the server's workers and order writer stay plain threads and
//! the server itself never awaits. One thread is enough: the work is waiting
//! on the network and on the database's fsyncs; the pool lets up to
//! `pool_max` jobs wait at once.
//!
//! **Failures.** A connection that cannot be made or breaks, and a job not
//! done within the command timeout (`store.command_timeout_ms`), are
//! `Unavailable` (503, retry): the pool drops broken connections and opens
//! new ones, so a restarted database is used again without any action. A
//! timed-out job is cancelled. A connection lost after COMMIT was sent, and
//! a `commit_orders` cut off by the timeout, have an unknown outcome:
//! `OutcomeUnknown`, which the order writer resolves by sending the same
//! batch again (it cannot apply twice: its order ids are the primary key,
//! its request ids a unique key).
//!
//! **Durability.** InnoDB with `innodb_flush_log_at_trx_commit=1` (and
//! `sync_binlog=1` if the binlog is on) fsyncs at every COMMIT; the settings
//! are read back by [`Store::durability_settings`]. Transactions run at READ
//! COMMITTED: locking reads then take no gap locks, so batches from several
//! instances only meet on the item rows they both sell, which is where stock
//! must be arbitrated anyway (a binlog, if any, must be ROW or MIXED).
//!
//! Code map: this file (the bridge and the trait); `mysql_sql` (errors,
//! transactions, multi-row statements); `mysql_schema`; `mysql_accounts`
//! (instances, users, sessions); `mysql_orders` (items, orders, stock);
//! `mysql_batch` (a group commit's decisions).

use std::future::Future;
use std::pin::Pin;
use std::thread::JoinHandle;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use tokio::sync::mpsc;

use super::mysql_sql::{ER_BAD_DB, Fail, map_err, quote_ident, server_code};
use super::{
    CancelError, CancelOutcome, Holding, ItemId, ItemRecord, ItemStats, NewOrder, OrderId, OrderOutcome, OrderRecord,
    PayError, PendingOrder, ReconcileReport, ReleasedUnits, SessionRecord, StockRow, Store, StoreError, TokenHash,
    UserId, UserRecord, mysql_accounts as accounts, mysql_orders as orders, mysql_schema as schema,
};

/// A job waiting for the store's thread beyond this many is refused at once
/// (503): the callers are a bounded pool of workers and the order writer, so
/// only a database that stopped answering fills it.
const JOBS_QUEUED_MAX: usize = 1024;
/// Prepared statements kept per connection: every text this store sends fits,
/// so none is prepared twice on one connection.
const STATEMENT_CACHE_SIZE: usize = 128;
/// How long closing the pool may take when the store is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an idle connection above the first is kept open.
const IDLE_CONNECTION_TTL: Duration = Duration::from_secs(60);
/// The caller waits this much longer than the job's own timeout, so the job
/// normally reports its timeout itself.
const REPLY_MARGIN: Duration = Duration::from_millis(250);

/// How to reach the database and how long to wait for it.
#[derive(Debug, Clone)]
pub struct MysqlOptions {
    /// `mysql://USER:PASS@HOST:PORT/DB`; the database is created if missing.
    pub url: String,
    /// Most connections open at once (`store.pool_max`).
    pub pool_max: usize,
    /// A call not answered within this is `Unavailable` (its outcome unknown).
    pub command_timeout: Duration,
    /// Concurrent transactions one group commit is split into
    /// (`store.commit_lanes`; 1: one transaction; see `mysql_orders::commit_orders`).
    pub commit_lanes: usize,
}

impl MysqlOptions {
    /// A call waits at most this long by default: long enough for a batch of
    /// thousands of orders on a slow disk, short enough that a hung database
    /// frees the server's workers.
    pub const COMMAND_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);

    /// Lanes per group commit by default (the configuration's default too):
    /// one transaction, see `store.commit_lanes` in the README.
    pub const COMMIT_LANES_DEFAULT: usize = 1;

    pub fn new(url: &str, pool_max: usize) -> Self {
        MysqlOptions {
            url: url.to_owned(),
            pool_max,
            command_timeout: Self::COMMAND_TIMEOUT_DEFAULT,
            commit_lanes: Self::COMMIT_LANES_DEFAULT,
        }
    }
}

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;
/// A job for the store's thread: given the pool, the future that does the work and replies.
type Job = Box<dyn FnOnce(Pool) -> LocalFuture + Send>;

/// The MySQL/MariaDB store. Cheap to share behind an `Arc`; see the module doc.
pub struct MysqlStore {
    /// `None` only while dropping (closing it ends the thread).
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    command_timeout: Duration,
    /// Lanes per group commit, at most `pool_max` (each holds a connection).
    commit_lanes: usize,
    /// The URL without its password, for messages.
    url_shown: String,
    database: String,
}

impl std::fmt::Debug for MysqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlStore").field("url", &self.url_shown).finish()
    }
}

impl MysqlStore {
    /// Connects, creates the database if it does not exist, and migrates it
    /// to the current schema. Fails with `Unavailable` if the server cannot
    /// be reached.
    pub fn open(options: &MysqlOptions) -> Result<Self, StoreError> {
        Self::open_at_version(options, schema::MIGRATIONS.len())
    }

    /// Opens and migrates only up to `version`: for tests of the migrations.
    pub(super) fn open_at_version(options: &MysqlOptions, version: usize) -> Result<Self, StoreError> {
        let opts = Opts::from_url(&options.url).map_err(|e| StoreError::Internal(format!("store.url: {e}")))?;
        let database = opts.db_name().unwrap_or_default().to_owned();
        if database.is_empty() {
            return Err(StoreError::Internal("store.url names no database (mysql://USER:PASS@HOST:PORT/DB)".into()));
        }
        let url_shown =
            format!("mysql://{}@{}:{}/{}", opts.user().unwrap_or(""), opts.ip_or_hostname(), opts.tcp_port(), database);
        let pool_max = options.pool_max.max(1);
        let pool_opts = PoolOpts::default()
            .with_constraints(
                PoolConstraints::new(1, pool_max).ok_or_else(|| StoreError::Internal("store.pool_max".into()))?,
            )
            // Idle connections are kept (up to pool_max) this long, then closed
            // down to one. mysql_async's default (0) closes every connection
            // above the minimum as soon as it is returned: one connect, two
            // setup round trips and fresh prepares per transaction.
            .with_inactive_connection_ttl(IDLE_CONNECTION_TTL)
            // No COM_RESET_CONNECTION when a connection returns to the pool: it
            // would drop the prepared statements and the scratch tables. Every
            // transaction here ends in COMMIT or ROLLBACK, and the pool rolls
            // back one left open.
            .with_reset_connection(false);
        let opts: Opts = OptsBuilder::from_opts(opts)
            .pool_opts(pool_opts)
            .stmt_cache_size(STATEMENT_CACHE_SIZE)
            // READ COMMITTED: see the module doc. Strict mode: a value that
            // does not fit is an error, never silently truncated.
            .init(vec![
                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
            ])
            .setup(schema::CONNECTION_SETUP.to_vec())
            .into();
        let (jobs, queue) = mpsc::channel::<Job>(JOBS_QUEUED_MAX);
        let thread_opts = opts.clone();
        let thread = std::thread::Builder::new()
            .name("mysql-store".into())
            .spawn(move || run(thread_opts, queue))
            .map_err(|e| StoreError::Internal(format!("cannot start the store thread: {e}")))?;
        let store = MysqlStore {
            jobs: Some(jobs),
            thread: Some(thread),
            command_timeout: options.command_timeout,
            commit_lanes: options.commit_lanes.clamp(1, pool_max),
            url_shown,
            database,
        };
        store.call(move |pool| async move {
            let mut conn = connect(&pool, &opts).await.map_err(Fail::into_error)?;
            schema::migrate(&mut conn, version).await.map_err(Fail::into_error)
        })?;
        Ok(store)
    }

    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.call(|pool| async move {
            let mut conn = pool.get_conn().await.map_err(map_err)?;
            schema::version(&mut conn).await.map_err(Fail::into_error)
        })
    }

    /// `(Innodb_os_log_fsyncs, Innodb_data_fsyncs)` from SHOW GLOBAL STATUS:
    /// server-wide counters, for benchmarks to divide by the orders written.
    pub fn fsync_counters(&self) -> Result<(u64, u64), StoreError> {
        self.call(|pool| async move {
            let mut conn = pool.get_conn().await.map_err(map_err)?;
            let rows: Vec<(String, String)> = conn
                .query("SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_os_log_fsyncs', 'Innodb_data_fsyncs')")
                .await
                .map_err(map_err)?;
            let get = |name: &str| {
                rows.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.parse().ok()).unwrap_or(0)
            };
            Ok((get("Innodb_os_log_fsyncs"), get("Innodb_data_fsyncs")))
        })
    }

    /// The database this store uses (from the URL).
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Runs SQL behind the store's back: for tests that damage or inspect data.
    #[cfg(test)]
    pub(super) fn execute_raw(&self, sql: &str) -> Result<(), StoreError> {
        let sql = sql.to_owned();
        self.call(move |pool| async move {
            let mut conn = pool.get_conn().await.map_err(map_err)?;
            conn.query_drop(sql).await.map_err(map_err)
        })
    }

    /// Sends `job` to the store's thread and waits for its answer, at most
    /// the command timeout (plus a margin).
    fn call<T, E, F, Fut>(&self, job: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(Pool) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + 'static,
    {
        self.call_timed(StoreError::Unavailable, job)
    }

    /// [`Self::call`], with `timed_out` making the error of a job not done in
    /// time: a write cut off may or may not have committed.
    fn call_timed<T, E, F, Fut>(&self, timed_out: fn(String) -> StoreError, job: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(Pool) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + 'static,
    {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let timeout = self.command_timeout;
        let boxed: Job = Box::new(move |pool: Pool| -> LocalFuture {
            Box::pin(async move {
                let result = match tokio::time::timeout(timeout, job(pool)).await {
                    Ok(result) => result,
                    Err(_) => Err(timed_out(format!("no answer within {} ms", timeout.as_millis())).into()),
                };
                // The caller may have given up waiting: then nobody reads it.
                let _ = reply.send(result);
            })
        });
        let jobs = self.jobs.as_ref().ok_or_else(|| StoreError::Internal("store closed".into()))?;
        jobs.try_send(boxed).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Unavailable("too many store calls waiting".into()),
            mpsc::error::TrySendError::Closed(_) => StoreError::Internal("the store thread has ended".into()),
        })?;
        match answer.recv_timeout(timeout + REPLY_MARGIN) {
            Ok(result) => result,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                Err(timed_out(format!("no answer within {} ms", timeout.as_millis())).into())
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                Err(StoreError::Internal("a store job ended without an answer".into()).into())
            }
        }
    }
}

impl Drop for MysqlStore {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop; it then closes the pool.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The store's thread: a current-thread runtime running each job as a local
/// task (jobs need not be `Send`), until the store is dropped.
fn run(opts: Opts, mut queue: mpsc::Receiver<Job>) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        // Every call then fails with "ended without an answer": reported, not a panic.
        Err(_) => return,
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let pool = Pool::new(opts);
        while let Some(job) = queue.recv().await {
            tokio::task::spawn_local(job(pool.clone()));
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, pool.disconnect()).await;
    });
}

/// The first connection: creates the database if the server says it does
/// not exist (a fresh server, or a test's own database), then retries.
async fn connect(pool: &Pool, opts: &Opts) -> Result<Conn, Fail<StoreError>> {
    match pool.get_conn().await {
        Err(e) if server_code(&e) == Some(ER_BAD_DB) => {
            let database = opts.db_name().unwrap_or_default().to_owned();
            let bare = OptsBuilder::from_opts(opts.clone()).db_name(None::<String>).setup(Vec::<String>::new());
            let mut conn = Conn::new(bare).await?;
            conn.query_drop(format!(
                "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
                quote_ident(&database)
            ))
            .await?;
            let _ = conn.disconnect().await;
            Ok(pool.get_conn().await?)
        }
        other => Ok(other?),
    }
}

impl Store for MysqlStore {
    fn durability_settings(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.call(|pool| async move { accounts::durability_settings(&pool).await })
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.call(|pool| async move {
            let mut conn = pool.get_conn().await.map_err(map_err)?;
            conn.ping().await.map_err(map_err)
        })
    }

    fn allocate_instance_id(&self, now_ms: u64) -> Result<u32, StoreError> {
        self.call(move |pool| async move { accounts::allocate_instance_id(&pool, now_ms).await })
    }

    fn create_user(&self, username: &str, password_hash: &str, now_ms: u64) -> Result<UserId, StoreError> {
        let (username, password_hash) = (username.to_owned(), password_hash.to_owned());
        self.call(move |pool| async move { accounts::create_user(&pool, &username, &password_hash, now_ms).await })
    }

    fn create_users_bulk(
        &self,
        prefix: &str,
        count: u32,
        password_hash: &str,
        now_ms: u64,
    ) -> Result<Vec<UserId>, StoreError> {
        let (prefix, password_hash) = (prefix.to_owned(), password_hash.to_owned());
        self.call(move |pool| async move {
            accounts::create_users_bulk(&pool, &prefix, count, &password_hash, now_ms).await
        })
    }

    fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let username = username.to_owned();
        self.call(move |pool| async move { accounts::user_by_name(&pool, &username).await })
    }

    fn user_by_id(&self, user_id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.call(move |pool| async move { accounts::user_by_id(&pool, user_id).await })
    }

    fn insert_sessions(&self, sessions: &[SessionRecord]) -> Result<(), StoreError> {
        if sessions.is_empty() {
            return Ok(());
        }
        let sessions = sessions.to_vec();
        self.call(move |pool| async move { accounts::insert_sessions(&pool, &sessions).await })
    }

    fn session(&self, token_hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        let token_hash = *token_hash;
        self.call(move |pool| async move { accounts::session(&pool, &token_hash).await })
    }

    fn touch_sessions(&self, touches: &[(TokenHash, u64)]) -> Result<(), StoreError> {
        if touches.is_empty() {
            return Ok(());
        }
        let touches = touches.to_vec();
        self.call(move |pool| async move { accounts::touch_sessions(&pool, &touches).await })
    }

    fn live_sessions(&self, now_ms: u64) -> Result<Vec<SessionRecord>, StoreError> {
        self.call(move |pool| async move { accounts::live_sessions(&pool, now_ms).await })
    }

    fn delete_session(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        let token_hash = *token_hash;
        self.call(move |pool| async move { accounts::delete_session(&pool, &token_hash).await })
    }

    fn delete_expired_sessions(&self, now_ms: u64) -> Result<usize, StoreError> {
        self.call(move |pool| async move { accounts::delete_expired_sessions(&pool, now_ms).await })
    }

    fn put_item(&self, item: &ItemRecord) -> Result<ItemRecord, StoreError> {
        let item = item.clone();
        self.call(move |pool| async move { orders::put_item(&pool, &item).await })
    }

    fn item(&self, item_id: ItemId) -> Result<Option<ItemRecord>, StoreError> {
        self.call(move |pool| async move { orders::item(&pool, item_id).await })
    }

    fn items(&self) -> Result<Vec<ItemRecord>, StoreError> {
        self.call(|pool| async move { orders::items(&pool).await })
    }

    fn adjust_stock(&self, item_id: ItemId, delta: i64) -> Result<ItemStats, StoreError> {
        self.call(move |pool| async move { orders::adjust_stock(&pool, item_id, delta).await })
    }

    fn item_stats(&self, item_id: ItemId) -> Result<ItemStats, StoreError> {
        self.call(move |pool| async move { orders::item_stats(&pool, item_id).await })
    }

    fn renew_pool_epoch(&self, item_id: ItemId) -> Result<(u64, u64), StoreError> {
        self.call(move |pool| async move { orders::renew_pool_epoch(&pool, item_id).await })
    }

    fn commit_orders(&self, new_orders: &[NewOrder]) -> Result<Vec<OrderOutcome>, StoreError> {
        if new_orders.is_empty() {
            return Ok(Vec::new());
        }
        let new_orders = new_orders.to_vec();
        let lanes = self.commit_lanes;
        // Cut off by the timeout, the batch may have committed (see `orders::writer`).
        self.call_timed(StoreError::OutcomeUnknown, move |pool| async move {
            orders::commit_orders(&pool, &new_orders, lanes).await
        })
    }

    fn order(&self, order_id: OrderId) -> Result<Option<OrderRecord>, StoreError> {
        self.call(move |pool| async move { orders::order(&pool, order_id).await })
    }

    fn order_by_request(&self, user_id: UserId, request_id: &str) -> Result<Option<OrderRecord>, StoreError> {
        let request_id = request_id.to_owned();
        self.call(move |pool| async move { orders::order_by_request(&pool, user_id, &request_id).await })
    }

    fn orders_of_user(
        &self,
        user_id: UserId,
        limit: u32,
        before: Option<OrderId>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        self.call(move |pool| async move { orders::orders_of_user(&pool, user_id, limit, before).await })
    }

    fn orders_of_item(
        &self,
        item_id: ItemId,
        limit: u32,
        after: Option<OrderId>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        self.call(move |pool| async move { orders::orders_of_item(&pool, item_id, limit, after).await })
    }

    fn pay_order(&self, order_id: OrderId, user_id: UserId, now_ms: u64) -> Result<OrderRecord, PayError> {
        self.call(move |pool| async move { orders::pay_order(&pool, order_id, user_id, now_ms).await })
    }

    fn cancel_order(&self, order_id: OrderId, user_id: UserId, now_ms: u64) -> Result<CancelOutcome, CancelError> {
        self.call(move |pool| async move { orders::cancel_order(&pool, order_id, user_id, now_ms).await })
    }

    fn expire_orders(&self, order_ids: &[OrderId], now_ms: u64) -> Result<Vec<ReleasedUnits>, StoreError> {
        if order_ids.is_empty() {
            return Ok(Vec::new());
        }
        let order_ids = order_ids.to_vec();
        self.call(move |pool| async move { orders::expire_orders(&pool, &order_ids, now_ms).await })
    }

    fn orders_with_request_ids(&self, limit: usize) -> Result<Vec<OrderRecord>, StoreError> {
        self.call(move |pool| async move { orders::orders_with_request_ids(&pool, limit).await })
    }

    fn pending_orders(&self) -> Result<Vec<PendingOrder>, StoreError> {
        self.call(|pool| async move { orders::pending_orders(&pool).await })
    }

    fn stock_snapshot(&self) -> Result<Vec<StockRow>, StoreError> {
        self.call(|pool| async move { orders::stock_snapshot(&pool).await })
    }

    fn holdings_snapshot(&self) -> Result<Vec<Holding>, StoreError> {
        self.call(|pool| async move { orders::holdings_snapshot(&pool).await })
    }

    fn reconcile(&self) -> Result<ReconcileReport, StoreError> {
        self.call(|pool| async move { orders::reconcile(&pool).await })
    }
}
