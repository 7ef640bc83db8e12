-- With the timescaledb extension available, OHLCV becomes a hypertable chunked by open time
-- (7 days), compressed after 30 days (segmented by symbol and timeframe). Without it the plain
-- table and its primary key index (symbol, timeframe, open_time) serve every query we make.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        PERFORM create_hypertable('ohlcv', 'open_time', chunk_time_interval => interval '7 days',
                                  if_not_exists => TRUE, migrate_data => TRUE);
        EXECUTE 'ALTER TABLE ohlcv SET (timescaledb.compress, '
             || 'timescaledb.compress_segmentby = ''symbol, timeframe'', '
             || 'timescaledb.compress_orderby = ''open_time'')';
        PERFORM add_compression_policy('ohlcv', interval '30 days', if_not_exists => TRUE);
    END IF;
END
$$;
