-- recvault's metadata documents as an Athena table: one JSON line per recording, partitioned by
-- the recording's start day (UTC) with partition projection, so new days need no crawler and no
-- MSCK REPAIR TABLE. Replace <bucket> and <prefix> (RECVAULT_S3_PREFIX with its trailing "/", or
-- nothing) in LOCATION and storage.location.template.
-- Every column is a field of the documents under Twilio's name (snake_case) or recvault's archive
-- facts; encryption_details is Twilio's JSON object, read as its JSON text; callback holds the
-- parameters of the callback that led to the archive, tags the object's S3 tags; schema_version is
-- the document's schema version (null in documents written before it existed: version 0).
CREATE EXTERNAL TABLE IF NOT EXISTS recordings (
  sid string,
  account_sid string,
  call_sid string,
  conference_sid string,
  api_version string,
  date_created string,
  date_updated string,
  start_time string,
  duration string,
  channels int,
  source string,
  status string,
  track string,
  error_code int,
  price string,
  price_unit string,
  uri string,
  media_url string,
  encryption_details string,
  media_key string,
  media_version_id string,
  media_size bigint,
  media_sha256 string,
  media_checksum_sha256 string,
  media_format string,
  content_type string,
  media_channels int,
  media_duration_seconds double,
  media_check string,
  media_sample_rate int,
  media_source string,
  requested_channels int,
  archived_at string,
  policy string,
  policy_version string,
  labels map<string,string>,
  storage_class string,
  kms_key_id string,
  delete_from_twilio boolean,
  retention_mode string,
  retain_until string,
  legal_hold boolean,
  twilio_deleted_at string,
  price_updated_at string,
  received_at string,
  tags map<string,string>,
  callback map<string,string>,
  pipeline_version string,
  schema_version int
)
PARTITIONED BY (`date` string)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
LOCATION 's3://<bucket>/<prefix>metadata/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy-MM-dd',
  'projection.date.range' = '2020-01-01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://<bucket>/<prefix>metadata/date=${date}/'
);

-- The report of deploy/duckdb/recordings.sql, for one month:
-- SELECT "date", source, channels, count(*) AS recordings,
--        round(sum(CAST(duration AS integer)) / 60.0, 2) AS minutes, count(price) AS priced,
--        sum(CAST(price AS decimal(18, 5))) AS price, price_unit
-- FROM recordings
-- WHERE "date" BETWEEN '2026-03-01' AND '2026-03-31'
-- GROUP BY 1, 2, 3, 8
-- ORDER BY 1, 2, 3, 8;
