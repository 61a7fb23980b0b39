from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.models import App
from accounts.services import enrollment_add, user_by_email
from keymaster.errors import KeymasterError


class Command(BaseCommand):
    help = "Enroll the user EMAIL in the app APP_ID."

    def add_arguments(self, parser):
        parser.add_argument("app_id")
        parser.add_argument("email")

    def handle(self, *args, app_id, email, **options):
        try:
            app = App.objects.get(app_id=app_id)
            user = user_by_email(email)
        except (App.DoesNotExist, ValueError, ValidationError) as exc:
            raise CommandError(f"No app has the id {app_id}.") from exc
        except KeymasterError as exc:
            raise CommandError(exc.message) from exc
        _, created = enrollment_add(app=app, user=user)
        self.stdout.write(
            f"{'enrolled' if created else 'already enrolled'}: {user.email} in {app.name}"
        )
