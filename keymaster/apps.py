from django.apps import AppConfig


class KeymasterConfig(AppConfig):
    name = "keymaster"
    default_auto_field = "django.db.models.BigAutoField"
