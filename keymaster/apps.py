from django.apps import AppConfig


class KeymasterConfig(AppConfig):
    name = "keymaster"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from keymaster import lookups  # noqa: F401 - registers `__any` on every field
