"""The worker path: claiming, sending, recording, receipts, retries, sweeps and housekeeping."""
