-- The response cache (llm/store/cache.py). Bump cache.SCHEMA_VERSION on any change. Every statement is
-- IF NOT EXISTS, so running this file again brings an older cache up to date (cache.py's migration).
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    image_id INTEGER NOT NULL,
    coco_split TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    latency_s REAL NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_order ON responses (task, image_id, key);
CREATE TABLE IF NOT EXISTS failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    task TEXT NOT NULL,
    image_id INTEGER NOT NULL,
    coco_split TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (key, created_at, reason)
);
CREATE INDEX IF NOT EXISTS failures_key ON failures (key);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    input_file_id TEXT,
    output_file_id TEXT,
    error_file_id TEXT,
    status TEXT NOT NULL,
    n_requests INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    collected_at TEXT
);
CREATE TABLE IF NOT EXISTS batch_requests (
    key TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL,
    task TEXT NOT NULL,
    image_id INTEGER NOT NULL,
    coco_split TEXT NOT NULL,
    prompt_version TEXT NOT NULL
);
-- Schema 2: in-flight claims (llm/store/claims.py). A run claims a key before it sends it, another run
-- skips a key whose claim is live. Never carried by `cache merge`.
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS claims_owner ON claims (owner);
-- Schema 3: per batch, the --base-url it was submitted to (never the API key, NULL for the default endpoint), which
-- `batch status|collect|cancel|forget` ask when given no --base-url, and the provider's request counts when it
-- was collected (NULL before, and for batches collected before schema 3). Carried by `cache merge`. No semicolons
-- in comments: cache.py splits this file on them.
CREATE TABLE IF NOT EXISTS batch_details (
    batch_id TEXT PRIMARY KEY,
    base_url TEXT,
    completed INTEGER,
    failed INTEGER
);
-- Schema 4: the sampling settings of each answer's request (the body's keys other than model and messages:
-- temperature, top_p, max_tokens or max_completion_tokens, seed) as canonical JSON, one row per answered key,
-- written with the answer. Answers stored before schema 4 have none. Carried by `cache merge`.
CREATE TABLE IF NOT EXISTS response_settings (
    key TEXT PRIMARY KEY,
    settings TEXT NOT NULL
);
-- Schema 4: what a prompt version stands for, as the runs that sent it recorded it: its task and a JSON object
-- of details (for the teacher: the context mode and the detailed-description instructions). Carried by
-- `cache merge` (llm/store/prompts.py).
CREATE TABLE IF NOT EXISTS prompt_versions (
    prompt_version TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    details TEXT NOT NULL
);
