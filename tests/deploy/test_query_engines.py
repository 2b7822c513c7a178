"""The DuckDB query of docs/archive.md on a real archive in SeaweedFS, and the Athena table against real documents."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import pytest

from recvault import layout

ROOT = Path(__file__).resolve().parents[2]
DUCKDB_QUERY = ROOT / "deploy" / "duckdb" / "recordings.sql"
ATHENA_DDL = ROOT / "deploy" / "athena" / "recordings.sql"
DAY = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
# What the simulator charges, as Twilio does: $0.0025 per started minute, negative.
PER_MINUTE = Decimal("-0.0025")
# Athena's column types and the JSON values each reads.
ATHENA_TYPES = {"string": str, "int": int, "bigint": int, "double": (int, float), "boolean": bool,
                "map<string,string>": dict}


def statement(path: Path) -> str:
    """The SQL of a file without its leading comment lines."""
    lines = path.read_text().splitlines()
    while lines and lines[0].startswith("--"):
        lines.pop(0)
    return "\n".join(lines).strip()


def httpfs() -> Path:
    """DuckDB's httpfs extension as the duckdb-extension-httpfs package ships it (nothing downloaded)."""
    found = resources.files("duckdb_extension_httpfs") / "extensions" / f"v{duckdb.__version__}" / \
        "httpfs.duckdb_extension"
    return Path(str(found))


@pytest.fixture
def archive(archive_env, sim) -> list:
    """Recordings over three days, three sources, mono and dual, one Twilio has not priced: all archived."""
    plan = [
        (0, "DialVerb", 2, 61), (0, "DialVerb", 2, 30), (0, "DialVerb", 1, 5), (0, "RecordVerb", 1, 125),
        (1, "StartCallRecordingAPI", 2, 59), (1, "StartCallRecordingAPI", 2, 60), (1, "DialVerb", 1, 14),
        (2, "RecordVerb", 1, 45),
    ]
    recordings = [sim.create_recording(date_created=DAY + timedelta(days=day, minutes=n), source=source,
                                       channels=channels, duration=duration)
                  for n, (day, source, channels, duration) in enumerate(plan)]
    unpriced = sim.create_recording(date_created=DAY + timedelta(days=1, hours=1), source="DialVerb", channels=1,
                                    duration=20, price_delay=3600)
    recordings.append(unpriced)
    for recording in recordings:
        archive_env.archive(recording)
    return recordings


def expected_rows(recordings) -> list[tuple]:
    groups: dict[tuple, list] = defaultdict(list)
    for rec in recordings:
        groups[(rec.start_time.date(), rec.source, rec.channels, "USD")].append(rec)
    rows = []
    for (day, source, channels, unit), members in sorted(groups.items()):
        priced = [rec for rec in members if rec.price_delay == 0]
        price = sum((PER_MINUTE * max(1, (Decimal(r.duration) / 60).to_integral_value(ROUND_CEILING))
                     for r in priced), Decimal(0)) if priced else None
        rows.append((day, source, channels, len(members), round(sum(r.duration for r in members) / 60, 2),
                     len(priced), price, unit))
    return rows


def test_the_documented_duckdb_query_counts_minutes_and_prices_per_day_source_and_channels(archive, archive_env,
                                                                                      s3_endpoint) -> None:
    query = statement(DUCKDB_QUERY)
    page = (ROOT / "docs" / "archive.md").read_text()
    assert query in page  # the archive page shows exactly this query
    assert "deploy/duckdb/recordings.sql" in page

    # No extension is installed or loaded from the network: only the packaged httpfs.
    db = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    db.execute(f"LOAD '{httpfs()}'")
    endpoint = urlsplit(s3_endpoint)
    db.execute(f"""CREATE SECRET archive (TYPE s3, KEY_ID 'any', SECRET 'any', REGION 'us-east-1',
                   ENDPOINT '{endpoint.netloc}', URL_STYLE 'path', USE_SSL false)""")
    db.execute(f"SET VARIABLE recvault_archive = 's3://{archive_env.store.bucket}/'")
    rows = db.execute(query).fetchall()
    columns = [column[0] for column in db.description]
    assert columns == ["date", "source", "channels", "recordings", "minutes", "priced", "price", "price_unit"]
    assert rows == expected_rows(archive)
    assert rows[0] == (date(2026, 3, 1), "DialVerb", 1, 1, 0.08, 1, Decimal("-0.0025"), "USD")  # one 5 s call
    assert sum(row[3] for row in rows) == len(archive)


def test_the_athena_table_reads_every_column_from_real_documents(archive, archive_env, sim) -> None:
    late = archive[-1]  # priced after archiving, so its document carries price_updated_at too
    late.price_delay = 0
    archive_env.refresh(late, archive_env.archive(late))
    documents = [json.loads(archive_env.store.get_bytes(key)) for key in archive_env.store.list_keys("metadata/")]
    ddl = ATHENA_DDL.read_text()
    table = re.search(r"CREATE EXTERNAL TABLE IF NOT EXISTS recordings \((.*?)\)\nPARTITIONED BY", ddl, re.S)
    assert table is not None
    columns = dict(line.strip().rstrip(",").split(" ", 1) for line in table[1].strip().splitlines())
    fields = set().union(*documents)
    assert set(columns) <= fields, f"columns no document has: {set(columns) - fields}"
    assert fields - set(columns) == set(), "document fields the table leaves out"
    for name, athena_type in columns.items():
        values = [document[name] for document in documents if document.get(name) is not None]
        if name == "encryption_details":  # a JSON object, read as its text
            continue
        assert all(isinstance(value, ATHENA_TYPES[athena_type]) for value in values), (name, athena_type, values)
        if athena_type.startswith("map<"):
            assert all(isinstance(v, str) for value in values for v in (*value, *value.values())), (name, values)
    # Partition projection points where recvault writes.
    location = re.search(r"LOCATION 's3://<bucket>/<prefix>(.*?)'", ddl)
    template = re.search(r"'storage.location.template' = 's3://<bucket>/<prefix>(.*?)'", ddl)
    assert location is not None and template is not None
    key = layout.metadata_key("", "2026-03-01", late.sid)
    assert key.startswith(location[1]) and key.startswith(template[1].replace("${date}", "2026-03-01"))
    assert "'projection.date.format' = 'yyyy-MM-dd'" in ddl and "PARTITIONED BY (`date` string)" in ddl
    assert "deploy/athena/recordings.sql" in (ROOT / "docs" / "archive.md").read_text()
