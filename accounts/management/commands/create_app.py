from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from accounts.services import app_create, user_by_email
from keymaster.errors import KeymasterError


class Command(BaseCommand):
    help = "Create an app; print its app_id, client_id and client_secret (shown once) as JSON."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--admin", metavar="EMAIL", help="make this user the app's admin")

    def handle(self, *args, name, admin, **options):
        try:
            admin_user = user_by_email(admin) if admin else None
        except KeymasterError as exc:
            raise CommandError(exc.message) from exc
        app, secret = app_create(name=name, admin=admin_user)
        self.stdout.write(
            json.dumps(
                {"app_id": app.client_id, "client_id": app.client_id, "client_secret": secret}
            )
        )
