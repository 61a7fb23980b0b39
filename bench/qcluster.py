"""`python -m bench.qcluster`: Keymaster's `manage.py qcluster`, counting SQL statements."""

from __future__ import annotations

import os


def main() -> None:
    """Set Django up, install the statement counter, and run the django-q2 cluster."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "keymaster.settings")
    import django
    from django.core.management import call_command

    from bench import sqlcount

    django.setup()
    sqlcount.install()
    call_command("qcluster")


if __name__ == "__main__":
    main()
