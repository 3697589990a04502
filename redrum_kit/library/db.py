"""The library's SQLite database: schema, migrations, connections.

One file, `library.sqlite` in the workspace, in WAL mode so readers (the
server, the browser app) never block on an import. The schema version is
SQLite's `user_version`; `MIGRATIONS[i]` takes a database from version `i`
to `i + 1`, each inside one transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from redrum_kit.errors import LibraryError

MIGRATIONS = [
    # 0 -> 1: oneshots and their features
    """
    CREATE TABLE oneshots (
        id INTEGER PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,      -- sha256 of the normalised audio, 16-bit
        path TEXT NOT NULL,             -- the original file, never modified
        copy TEXT NOT NULL,             -- normalised copy, relative to the workspace
        name TEXT NOT NULL,             -- instrument or file name, for display
        class TEXT NOT NULL,
        confidence REAL NOT NULL,       -- classifier probability of `class` (1.0 if set by hand)
        class_source TEXT NOT NULL,     -- 'model', 'name' (no model available) or 'user'
        kit TEXT NOT NULL,              -- the kit or folder it came from
        source TEXT NOT NULL,           -- 'folder', 'hydrogen' or 'synth'
        velocity_low INTEGER NOT NULL DEFAULT 0,
        velocity_high INTEGER NOT NULL DEFAULT 127,
        duration REAL NOT NULL,         -- seconds, of the normalised copy
        orig_sr INTEGER NOT NULL,
        orig_peak REAL NOT NULL,        -- peak of the original, linear
        name_class TEXT,                -- class the name suggests: labels for evaluation only
        imported_at TEXT NOT NULL DEFAULT (datetime('now'))
    );
    CREATE INDEX oneshots_class ON oneshots(class);
    CREATE INDEX oneshots_kit ON oneshots(kit);
    CREATE TABLE features (
        oneshot_id INTEGER PRIMARY KEY REFERENCES oneshots(id) ON DELETE CASCADE,
        layering BLOB NOT NULL,         -- float32[LAYERING_DIM]
        mfcc BLOB NOT NULL              -- float32[MFCC_DIM]
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the library database."""
    try:
        conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise LibraryError(f"{path}: the library database cannot be opened ({exc})") from None
    if version > SCHEMA_VERSION:
        raise LibraryError(f"{path}: made by a newer redrum-kit (schema {version}); please upgrade")
    for target in range(version, SCHEMA_VERSION):
        with transaction(conn):
            for statement in _statements(MIGRATIONS[target]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={target + 1}")
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection):
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (Ctrl-C included)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (executescript would commit early)."""
    lines = [line.split("--")[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
