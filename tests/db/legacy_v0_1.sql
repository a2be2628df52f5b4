-- The task table as gateways before schema migrations made it (v0.1, leases included),
-- with one running task and one finished one: tests/db/test_migrations.py upgrades it in place.
CREATE TABLE vgw_tasks (
	id VARCHAR(40) NOT NULL, 
	owner VARCHAR(64) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	stage VARCHAR(16), 
	progress INTEGER NOT NULL, 
	provider VARCHAR(32), 
	provider_task_id VARCHAR(200), 
	provider_status VARCHAR(64), 
	prompt TEXT NOT NULL, 
	expanded_prompt TEXT, 
	expanded_by VARCHAR(16), 
	request JSON NOT NULL, 
	params JSON NOT NULL, 
	route JSON NOT NULL, 
	video_key VARCHAR(400), 
	video_size BIGINT, 
	video_sha256 VARCHAR(64), 
	filename VARCHAR(200), 
	error JSON, 
	metadata JSON NOT NULL, 
	callback_url TEXT, 
	idempotency_key VARCHAR(200), 
	request_hash VARCHAR(64), 
	group_id VARCHAR(40), 
	attempts INTEGER NOT NULL, 
	lease_owner VARCHAR(64), 
	lease_until DATETIME, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_vgw_tasks_idempotency UNIQUE (owner, idempotency_key)
);
CREATE INDEX ix_vgw_tasks_created_at ON vgw_tasks (created_at);
CREATE INDEX ix_vgw_tasks_group_id ON vgw_tasks (group_id);
CREATE INDEX ix_vgw_tasks_lease_until ON vgw_tasks (lease_until);
CREATE INDEX ix_vgw_tasks_owner ON vgw_tasks (owner);
CREATE INDEX ix_vgw_tasks_status ON vgw_tasks (status);
INSERT INTO vgw_tasks VALUES ('vt_legacy_running', 'owner-a', 'running', 'generating', 40, 'seedance', 'cgt-legacy-1', 'running', 'a fox', NULL, 'none', '{"prompt": "a fox"}', '{"duration_s": 5}', '{"chain": ["seedance"], "reason": "default provider"}', NULL, NULL, NULL, NULL, NULL, '{}', NULL, 'key-1', 'hash-1', NULL, 0, 'old-process', '2026-11-20 10:00:00.000000', '2026-11-20 09:59:00.000000', '2026-11-20 09:59:30.000000', NULL);
INSERT INTO vgw_tasks VALUES ('vt_legacy_done', 'owner-a', 'succeeded', NULL, 100, 'preview', 'preview-vt_legacy_done', 'rendered', 'a cat', NULL, 'none', '{"prompt": "a cat"}', '{"frames": 12}', '{"chain": ["preview"], "reason": "default provider"}', 'videos/2026/11/20/x.mp4', 1000, NULL, 'video_x.mp4', NULL, '{}', NULL, NULL, 'hash-2', NULL, 0, NULL, NULL, '2026-11-20 09:00:00.000000', '2026-11-20 09:00:05.000000', '2026-11-20 09:00:05.000000');
