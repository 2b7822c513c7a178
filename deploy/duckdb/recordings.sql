-- Recordings per day, source and channel count: how many, how many minutes, and what Twilio charged.
-- It reads recvault's metadata documents (one JSON line per recording under metadata/date=YYYY-MM-DD/).
-- Say where the archive is first (the bucket, then RECVAULT_S3_PREFIX if one is set), e.g.
--   SET VARIABLE recvault_archive = 's3://my-recordings/';
-- `price` is Twilio's (negative: a charge), summed over the `priced` recordings; Twilio fills
-- prices in after completion, and recvault's refreshes add them to the documents.
SELECT
    date,
    source,
    channels,
    count(*) AS recordings,
    round(sum(CAST(duration AS INTEGER)) / 60, 2) AS minutes,
    count(price) AS priced,
    sum(CAST(price AS DECIMAL(18, 5))) AS price,
    price_unit
FROM read_json(
    getvariable('recvault_archive') || 'metadata/date=*/*.json',
    format = 'newline_delimited',
    hive_partitioning = true,
    columns = {sid: 'VARCHAR', source: 'VARCHAR', channels: 'INTEGER', duration: 'VARCHAR',
               price: 'VARCHAR', price_unit: 'VARCHAR'}
)
GROUP BY date, source, channels, price_unit
ORDER BY date, source, channels, price_unit;
