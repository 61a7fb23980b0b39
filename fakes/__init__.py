"""Local fakes of the providers Keymaster talks to, speaking their real protocols on 127.0.0.1.

Used by the tests, by `make run`'s demo and by the benchmark: FCM HTTP v1 with its OAuth token
endpoint (`fakes.fcm`), a Web Push service (`fakes.webpush`) and a webhook receiver
(`fakes.webhook`). Each is an aiohttp application that `fakes.server.FakeServer` runs on an
ephemeral loopback port in a background thread, or `python -m fakes` runs all together.
"""
