"""Operations (issue 18): metrics, readiness, logs, retention, stale devices, admin."""
