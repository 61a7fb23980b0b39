from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.services import user_create
from keymaster.errors import KeymasterError


class Command(BaseCommand):
    help = "Create a user who logs in with EMAIL (--staff for a Keymaster administrator)."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--password", required=True)
        parser.add_argument("--staff", action="store_true")

    def handle(self, *args, email, password, staff, **options):
        try:
            user = user_create(email=email, password=password, is_staff=staff)
        except KeymasterError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"created user {user.email} ({user.id}){' [staff]' if staff else ''}")
