from __future__ import annotations

from django.core.management.base import BaseCommand

from keymaster.crypto import encrypted_fields
from push.services.token_lookup import device_token_hmacs_recompute


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret under the newest TOKEN_ENCRYPTION_KEYS key, so older "
        "keys can then be dropped, and recompute every token lookup HMAC with TOKEN_LOOKUP_KEY, "
        "so TOKEN_LOOKUP_OLD_KEYS can then be emptied."
    )

    def handle(self, *args, **options):
        for model, field in encrypted_fields():
            done = 0
            rows = model.objects.exclude(**{field: ""}).only("pk", field).order_by("pk")
            for row in rows.iterator(chunk_size=1000):
                # Read decrypts with whichever key made it; the write encrypts with the newest.
                model.objects.filter(pk=row.pk).update(**{field: getattr(row, field)})
                done += 1
            self.stdout.write(f"{model._meta.label}.{field}: {done} re-encrypted")
        changed, removed = device_token_hmacs_recompute()
        self.stdout.write(
            f"push.Device.token_hmac: {changed} recomputed with TOKEN_LOOKUP_KEY, "
            f"{removed} duplicates removed"
        )
