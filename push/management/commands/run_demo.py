"""`make run`: the local fakes, the site and one worker, with demo data, until Ctrl-C."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts.models import App, User
from accounts.services import app_create, enrollment_add, user_create
from push.models import Device, Platform, Transport
from push.services.config import push_config_for
from push.services.devices import device_token_hmac

DEMO_DIR = Path(settings.BASE_DIR) / ".demo"
PORTS = {"web": 8000, "fcm": 9091, "webpush": 9092, "webhook": 9093}
ADMIN_EMAIL, USER_EMAIL = "admin@keymaster.local", "user@keymaster.local"


def _wait_for_port(port: int, name: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"{name} did not start on 127.0.0.1:{port}")


class Command(BaseCommand):
    help = "Run the demo: FCM/Web Push/webhook fakes, the site on :8000 and one qcluster worker."

    def handle(self, *args: Any, **options: Any) -> None:
        DEMO_DIR.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "DEBUG": os.environ.get("DEBUG", "1"),
            "FCM_CREDENTIALS_FILE": str(DEMO_DIR / "fcm-service-account.json"),
            "FCM_API_URL": f"http://127.0.0.1:{PORTS['fcm']}",
            "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1,localhost",
        }
        children: list[subprocess.Popen] = []
        try:
            children += self._start_fakes(env)
            call_command("migrate", interactive=False, verbosity=0)
            app_id = self._seed()
            env["PUSH_DEFAULT_APP_ID"] = app_id
            manage = [sys.executable, "manage.py"]
            children.append(
                subprocess.Popen(
                    [*manage, "runserver", f"127.0.0.1:{PORTS['web']}", "--noreload"], env=env
                )
            )
            children.append(subprocess.Popen([*manage, "qcluster"], env=env))
            _wait_for_port(PORTS["web"], "the site")
            self.stdout.write(
                self.style.SUCCESS(
                    f"\nKeymaster is running on http://127.0.0.1:{PORTS['web']}/login "
                    f"(webhook receiver: http://127.0.0.1:{PORTS['webhook']}/_control/received). "
                    "Ctrl-C stops everything.\n"
                )
            )
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            for child in children:
                child.send_signal(signal.SIGINT)
            for child in children:
                try:
                    child.wait(10)
                except subprocess.TimeoutExpired:
                    child.kill()

    def _start_fakes(self, env: dict[str, str]) -> list[subprocess.Popen]:
        python = sys.executable
        commands = {
            "fcm": [
                python,
                "-m",
                "fakes.fcm",
                "--port",
                str(PORTS["fcm"]),
                "--service-account",
                env["FCM_CREDENTIALS_FILE"],
            ],
            "webpush": [python, "-m", "fakes.webpush", "--port", str(PORTS["webpush"])],
            "webhook": [python, "-m", "fakes.webhook", "--port", str(PORTS["webhook"])],
        }
        children = [subprocess.Popen(command, env=env) for command in commands.values()]
        for name in commands:
            _wait_for_port(PORTS[name], f"the fake {name}")
        return children

    def _seed(self) -> str:
        """Create the demo admin, app and user on an empty database; give the user devices."""
        if not User.objects.exists():
            admin_password, user_password = _password(), _password()
            admin = user_create(email=ADMIN_EMAIL, password=admin_password, is_staff=True)
            user = user_create(email=USER_EMAIL, password=user_password)
            app, secret = app_create(name="Demo App", admin=admin)
            enrollment_add(app=app, user=user)
            config = push_config_for(app)
            config.webhook_url = f"http://127.0.0.1:{PORTS['webhook']}/hooks/push-receipts"
            config.save(update_fields=["webhook_url"])
            (DEMO_DIR / "demo.json").write_text(json.dumps({"app_id": app.client_id}))
            self.stdout.write(
                self.style.WARNING(
                    "\nDemo data created. These are shown once:\n"
                    f"  admin:  {ADMIN_EMAIL} / {admin_password}\n"
                    f"  user:   {USER_EMAIL} / {user_password}\n"
                    f"  app:    client_id {app.client_id}\n"
                    f"          client_secret {secret}\n"
                    "Enable push for Demo App in the Console (its Settings tab), then send.\n"
                )
            )
            self.stdout.write(
                export_block(
                    app=app,
                    secret=secret,
                    admin=(admin, admin_password),
                    user=(user, user_password),
                )
            )
        app = App.objects.get(app_id=json.loads((DEMO_DIR / "demo.json").read_text())["app_id"])
        self._demo_devices(app, User.objects.get(email=USER_EMAIL))
        return app.client_id

    def _demo_devices(self, app: App, user: User) -> None:
        # The fakes keep subscriptions in memory: each run gives the demo user fresh devices.
        Device.objects.filter(app=app, user=user).delete()
        answer = requests.post(
            f"http://127.0.0.1:{PORTS['webpush']}/_control/subscriptions", json={}, timeout=5
        )
        subscription = json.dumps(answer.json())
        token = f"demo-fcm-token-{os.urandom(8).hex()}"
        for platform, transport, value in [
            (Platform.WEB, Transport.WEBPUSH, subscription),
            (Platform.ANDROID, Transport.FCM, token),
        ]:
            Device.objects.create(
                app=app,
                user=user,
                platform=platform,
                transport=transport,
                token=value,
                token_hmac=device_token_hmac(transport, value),
                label=f"Demo {platform} device",
            )


def export_block(*, app: App, secret: str, admin: tuple[User, str], user: tuple[User, str]) -> str:
    """Return shell `export` lines that make the README's curl examples work when pasted."""
    values = {
        "B": f"http://127.0.0.1:{PORTS['web']}",
        "APP_ID": app.client_id,
        "CLIENT_ID": app.client_id,
        "CLIENT_SECRET": secret,
        "ADMIN_EMAIL": admin[0].email,
        "ADMIN_PASSWORD": admin[1],
        "USER_ID": str(user[0].pk),
        "USER_EMAIL": user[0].email,
        "USER_PASSWORD": user[1],
    }
    lines = "\n".join(f"export {name}={shlex.quote(value)}" for name, value in values.items())
    return f"\n# Paste into a shell to run the README's curl examples against this demo:\n{lines}\n"


def _password() -> str:
    return "demo-" + os.urandom(6).hex()
