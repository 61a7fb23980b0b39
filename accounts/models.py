"""Users, the apps that send through Keymaster, who administers them and who is enrolled."""

from __future__ import annotations

import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        if not email:
            raise ValueError("email is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    def __str__(self) -> str:
        return self.email


class App(models.Model):
    """A client app: its `app_id` is also its OAuth `client_id`."""

    app_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    # Only a Django password hash: the secret is shown once at creation and at each rotation.
    client_secret_hash = models.CharField(max_length=255)
    secret_rotated_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    admins = models.ManyToManyField(User, through="AppAdmin", related_name="administered_apps")
    members = models.ManyToManyField(User, through="Enrollment", related_name="enrolled_apps")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def client_id(self) -> str:
        return str(self.app_id)

    def check_client_secret(self, secret: str) -> bool:
        return check_password(secret, self.client_secret_hash)


class AppAdmin(models.Model):
    """A user who administers one app (staff administer every app)."""

    app = models.ForeignKey(App, on_delete=models.CASCADE)
    user = models.ForeignKey(User, on_delete=models.CASCADE)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "user"], name="uniq_app_admin")]

    def __str__(self) -> str:
        return f"{self.user} administers {self.app}"


class Enrollment(models.Model):
    """A user of an app: only enrolled users can register devices or be sent to."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="enrollments")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="enrollments")
    created_at = models.DateTimeField(default=timezone.now)
    # The user said "not from this app": sends are recorded as muted, nothing is delivered.
    muted = models.BooleanField(default=False)

    class Meta:
        # The unique index also serves "which of these user ids are enrolled in app X".
        constraints = [models.UniqueConstraint(fields=["app", "user"], name="uniq_enrollment")]

    def __str__(self) -> str:
        return f"{self.user} in {self.app}"


class RevokedToken(models.Model):
    """A user token that may not be used again: a refresh token once it has been exchanged (they
    rotate), or revoked by a logout; and the Console/Account cookie's token after a sign-out.

    Only the token's id (`jti`) is kept, never the token. A row is useless once the token has
    expired: `revoked_tokens_prune` deletes those.
    """

    jti = models.CharField(max_length=64, primary_key=True)
    expires_at = models.DateTimeField()

    class Meta:
        # Serves the prune: "rows whose token has expired".
        indexes = [models.Index(fields=["expires_at"], name="revoked_token_expiry")]

    def __str__(self) -> str:
        return f"revoked {self.jti}"


class Invitation(models.Model):
    """An app admin's invitation of an email address to an app, as a user or as an admin.

    Admins never learn whether the address has an account: the person holding it accepts (on
    the Account page or `POST /account/invitations/{app_id}/accept`; an invitation as a user
    is also accepted by registering a device in the app).
    """

    class Role(models.TextChoices):
        USER = "user"
        ADMIN = "admin"

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=8, choices=Role.choices)
    invited_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # Also serves "this person's invitations to app X" (accept, and device registration).
            models.UniqueConstraint(fields=["email", "app", "role"], name="uniq_invitation")
        ]

    def __str__(self) -> str:
        return f"{self.email} invited to {self.app} as {self.role}"
