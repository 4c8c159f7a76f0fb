-- The daily loop's runs, each as the JSON the Pipeline page shows. `runner`
-- names the data folder whose server ran it, so a restarted server closes
-- only its own interrupted runs while other replicas' go on.
CREATE TABLE pipeline_runs (
    runner TEXT NOT NULL,
    id TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    status TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (runner, id)
);
CREATE INDEX pipeline_runs_by_start ON pipeline_runs (started_ms);
