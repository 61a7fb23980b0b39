from django.apps import AppConfig


class PushAppConfig(AppConfig):
    name = "push"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        import push.cors  # noqa: F401 - connects django-cors-headers' check_request_enabled
        from push.delivery.monitor import heartbeat_start
        from push.delivery.sweeper import sweeper_start

        post_spawn.connect(_worker_warm_up, dispatch_uid="push-worker-warm-up")
        post_spawn.connect(heartbeat_start, dispatch_uid="push-worker-heartbeat")
        post_spawn.connect(sweeper_start, dispatch_uid="push-worker-sweeper")


def _worker_warm_up(sender: object, proc_name: str, **kwargs: object) -> None:
    """A new django-q2 worker imports the delivery code before its first task, not during it.

    firebase-admin, pywebpush and aiohttp take 0.2-0.6 s to import: paid inside the first
    task, at every start and every recycle, that delayed the first messages of a burst by as
    much (bench/README.md, item 21).
    """
    import push.tasks  # noqa: F401
