"""The first read-only layer of every SQL backend: a query must be one statement that only reads.

:func:`read_only_problem` parses a query offline with sqlglot in the backend's dialect and
says what is wrong with it, or returns None. It accepts exactly one ``SELECT`` (with ``WITH``,
``UNION`` and subqueries) and refuses everything else: a second statement, a data-modifying
CTE (``WITH d AS (DELETE ... RETURNING *) SELECT ...``), ``SELECT ... INTO``, row locks
(``FOR UPDATE``), ``COPY``, ``CALL``, ``SET``, ``PRAGMA``, ``ATTACH``, ClickHouse's
``SETTINGS`` clause, and calls to the functions that change state although they are called
from a ``SELECT`` (``set_config``, ``lo_export``, ``dblink_exec``, ``pg_terminate_backend``...).
A text sqlglot cannot parse is refused too: what cannot be read cannot be shown to only read.

The spec loader runs it at collection (a spec error naming the line) and the backends run it
again on the resolved text before every query, so a variable's value cannot smuggle a
statement in. The engine's own read-only session is the second layer, a read-only role the
third; this check is what makes a mistake visible before anything is contacted. No I/O.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlglot import expressions as exp

# SQLAlchemy backend names (the part of a URL's scheme before `+driver`) -> sqlglot dialects.
DIALECTS = {
    "postgresql": "postgres", "postgres": "postgres", "duckdb": "duckdb",
    "clickhouse": "clickhouse", "clickhousedb": "clickhouse", "snowflake": "snowflake",
    "bigquery": "bigquery", "trino": "trino", "presto": "presto", "sqlite": "sqlite",
    "mysql": "mysql", "mariadb": "mysql", "mssql": "tsql", "oracle": "oracle",
    "redshift": "redshift", "databricks": "databricks", "awsathena": "athena",
}

# Functions a SELECT may call that change the server's state, write files or reach another
# database. Read-only transactions stop most writes (nextval, for one) but not these.
_SIDE_EFFECTS = frozenset({
    # PostgreSQL
    "set_config", "lo_export", "lo_import", "lo_unlink", "lo_create", "lo_creat", "lo_put",
    "lo_from_bytea", "lo_truncate", "dblink", "dblink_exec", "dblink_connect",
    "dblink_connect_u", "dblink_send_query", "pg_terminate_backend", "pg_cancel_backend",
    "pg_reload_conf", "pg_rotate_logfile", "pg_switch_wal", "pg_promote",
    "pg_create_restore_point", "pg_file_write", "pg_file_rename", "pg_file_unlink",
    "pg_advisory_lock", "pg_advisory_lock_shared", "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared",
    "pg_try_advisory_xact_lock", "pg_try_advisory_xact_lock_shared", "pg_notify",
    "pg_logical_emit_message", "pg_drop_replication_slot", "pg_create_logical_replication_slot",
    "pg_create_physical_replication_slot", "pg_stat_reset", "pg_stat_reset_shared",
    "pg_backup_start", "pg_backup_stop", "pg_wal_replay_pause", "pg_wal_replay_resume",
    "setval", "nextval", "txid_current", "pg_current_xact_id",
    # SQL Server, Snowflake, DuckDB
    "xp_cmdshell", "system$cancel_query", "system$abort_session", "system$cancel_all_queries",
    "system$abort_transaction", "system$set_return_value", "system$send_email",
    "system$wait", "system$task_dependents_enable", "system$user_task_cancel_ongoing_executions",
    "checkpoint", "force_checkpoint",
})


# A bound parameter as SQLAlchemy's text() and sqlite3 find it: `:name`, not `::type` casts.
# It is parsed as a literal, because the engine never sees `:name` either (the driver sends
# its own placeholder), and some dialects read a leading `:` otherwise (DuckDB's prefix
# alias `SELECT name: expr`).
_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


@functools.cache
def _refused() -> dict[type[Any], str]:
    """Statements and clauses that do more than read, wherever they appear in the tree.

    Built on first use: sqlglot is imported only by a run whose spec has SQL queries.
    """
    from sqlglot import expressions as exp

    return {
        exp.Insert: "INSERT", exp.Update: "UPDATE", exp.Delete: "DELETE", exp.Merge: "MERGE",
        exp.Copy: "COPY", exp.Create: "CREATE", exp.Drop: "DROP", exp.Alter: "ALTER",
        exp.TruncateTable: "TRUNCATE", exp.Into: "SELECT ... INTO",
        exp.Lock: "a row lock (FOR ...)", exp.Command: "a command", exp.Set: "SET",
        exp.Pragma: "PRAGMA", exp.Use: "USE", exp.Transaction: "a transaction statement",
        exp.Commit: "COMMIT", exp.Rollback: "ROLLBACK", exp.Attach: "ATTACH",
        exp.Detach: "DETACH", exp.Grant: "GRANT", exp.Revoke: "REVOKE",
        exp.LoadData: "LOAD DATA", exp.Kill: "KILL", exp.Cache: "CACHE",
        exp.Uncache: "UNCACHE", exp.Refresh: "REFRESH", exp.Install: "INSTALL",
        exp.Export: "EXPORT", exp.Analyze: "ANALYZE",
    }


def sqlglot_dialect(backend_name: str) -> str | None:
    """The sqlglot dialect of an SQLAlchemy backend name (``postgresql``), or None."""
    return DIALECTS.get(backend_name.lower())


@functools.lru_cache(maxsize=4096)
def read_only_problem(text: str, dialect: str, *, unparsable: bool = False) -> str | None:
    """What makes ``text`` more than one read-only statement in ``dialect``; None if nothing.

    ``unparsable=True`` lets a text sqlglot cannot parse through, for an engine whose own
    guard refuses every write whatever the text (SQLite's authorizer): its syntax error
    then comes from the engine, which words it better. Cached: the same resolved text is
    checked at collection and before each query.
    """
    import sqlglot
    import sqlglot.errors
    from sqlglot import expressions as exp

    try:
        statements = [s for s in sqlglot.parse(_BIND.sub("0", text), read=dialect)
                      if s is not None]
    except sqlglot.errors.SqlglotError as exc:
        if unparsable:
            return None
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return (f"the query cannot be parsed as {dialect} SQL ({first}); a gate runs only "
                "queries it can prove read-only")
    if len(statements) != 1:
        return (f"the query holds {len(statements)} statements; give exactly one SELECT"
                if statements else "the query is empty; give one SELECT")
    statement = statements[0]
    if not isinstance(statement, (exp.Select, exp.SetOperation, exp.Subquery)):
        return (f"the query is {_name(statement)}; a gate only reads, so only one SELECT "
                "(or WITH ... SELECT) is allowed")
    refused_kinds = _refused()
    for node in statement.walk():
        refused = next((label for kind, label in refused_kinds.items()
                        if isinstance(node, kind)), None)
        if refused is not None:
            return (f"the query contains {refused}; a gate only reads, so only one SELECT "
                    "(or WITH ... SELECT) without it is allowed")
        if isinstance(node, exp.Select) and node.args.get("settings"):
            return ("the query has a SETTINGS clause, which could lift the session's read-only "
                    "setting; set engine settings on the backend, not in a query")
        if isinstance(node, exp.Func):
            name = _function_name(node)
            if name in _SIDE_EFFECTS:
                return (f"the query calls {name}(), which changes the database's state; a "
                        "gate only reads")
    return None


def _function_name(node: exp.Func) -> str:
    from sqlglot import expressions as exp

    name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
    return str(name).lower().rsplit(".", 1)[-1]


def _name(statement: exp.Expr) -> str:
    for kind, label in _refused().items():
        if isinstance(statement, kind):
            return f"{label}, not a SELECT"
    return f"not a SELECT (sqlglot reads it as {type(statement).__name__})"


__all__ = ["DIALECTS", "read_only_problem", "sqlglot_dialect"]
