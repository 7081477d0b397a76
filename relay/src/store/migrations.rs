//! The SQL migrations in `migrations/<backend>/`, embedded in the binary and applied by sqlx.

use std::borrow::Cow;

use futures_util::future::BoxFuture;
use sqlx::SqlSafeStr;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// (version, description, SQL) of every migration of one backend.
type Embedded = &'static [(i64, &'static str, &'static str)];

pub const SQLITE: Embedded = &[
    (1, "events", include_str!("../../../migrations/sqlite/0001_events.sql")),
    (2, "log", include_str!("../../../migrations/sqlite/0002_log.sql")),
    (3, "chains", include_str!("../../../migrations/sqlite/0003_chains.sql")),
    (4, "compact storage", include_str!("../../../migrations/sqlite/0004_compact_storage.sql")),
    (5, "leaves without event id", include_str!("../../../migrations/sqlite/0005_leaves_without_event_id.sql")),
    (6, "events ordered by id prefix", include_str!("../../../migrations/sqlite/0006_events_ordered_by_id_prefix.sql")),
];
pub const POSTGRES: Embedded = &[
    (1, "events", include_str!("../../../migrations/postgres/0001_events.sql")),
    (2, "log", include_str!("../../../migrations/postgres/0002_log.sql")),
    (3, "chains", include_str!("../../../migrations/postgres/0003_chains.sql")),
    (4, "ephemeral outbox", include_str!("../../../migrations/postgres/0004_ephemeral_outbox.sql")),
    (5, "events without received_at", include_str!("../../../migrations/postgres/0005_events_without_received_at.sql")),
    (6, "leaves without event id", include_str!("../../../migrations/postgres/0006_leaves_without_event_id.sql")),
    (
        7,
        "events ordered by id prefix",
        include_str!("../../../migrations/postgres/0007_events_ordered_by_id_prefix.sql"),
    ),
];

#[derive(Debug)]
struct Source(Embedded);

impl MigrationSource<'static> for Source {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        sqlx::AssertSqlSafe(*sql).into_sql_str(),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// A migrator over one backend's embedded migrations.
pub async fn migrator(migrations: Embedded) -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Source(migrations)).await
}
