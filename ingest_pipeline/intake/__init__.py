"""The intake service (`ingest-pipeline serve-intake`): verifies signed webhook deliveries,
lands them in the landing bucket, hands out presigned upload URLs, and audits every request.

Modules: `signatures` (pure HMAC checks and signing helpers), `config` (tenants' intake
blocks, production refusal), `ratelimit`, `store` (landing keys and conditional PUTs),
`audit` (batched rows into normalized.intake_audit), `metrics`, `app` (`create_app`).
"""
