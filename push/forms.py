"""The Console's and the Account page's forms: shape checks here, rules in the services."""

from __future__ import annotations

from datetime import UTC, datetime

from django import forms
from django.contrib.auth.forms import PasswordChangeForm
from django.utils import timezone

from keymaster.errors import InvalidInput
from push.cors import origins_validate
from push.models import NotificationStatus, Platform, ReceiptStatus
from push.serializers import SCHEDULE_MAX, SEND_NOW_WITHIN
from push.services.config import webhook_url_check

MAX_SERVICE_ACCOUNT_BYTES = 64 * 1024
MAX_QUOTA = 2_147_483_647  # PositiveIntegerField's ceiling


class PushSettingsForm(forms.Form):
    webhook_url = forms.CharField(
        label="Webhook URL",
        required=False,
        max_length=2000,
        help_text="Where Keymaster POSTs delivery receipts (https). Leave empty for none.",
        widget=forms.URLInput(attrs={"placeholder": "https://yourapp.example/hooks/push"}),
    )
    daily_quota = forms.IntegerField(
        label="Daily quota",
        min_value=1,
        max_value=MAX_QUOTA,
        help_text="Notifications per day; the count resets at 00:00 UTC.",
        error_messages={
            "required": "Enter how many notifications a day this app may send.",
            "invalid": "Enter a whole number, such as 10000.",
            "min_value": "The daily quota must be at least 1.",
            "max_value": "The daily quota can be at most %(limit_value)s.",
        },
    )
    allowed_origins = forms.CharField(
        label="Allowed origins",
        required=False,
        max_length=20_000,
        help_text="Your own web pages that may register devices, one origin a line "
        "(https://app.example.com; http only for localhost).",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "https://app.example.com"}),
    )
    track_opens = forms.BooleanField(
        label="Track opens (a click on a web notification is recorded)", required=False
    )

    def clean_allowed_origins(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["allowed_origins"].splitlines()]
        try:
            return origins_validate([line for line in lines if line])
        except InvalidInput as exc:
            raise forms.ValidationError(
                [message for messages in exc.extra["fields"].values() for message in messages]
            ) from None

    def clean_webhook_url(self) -> str:
        # Checked here too (the service checks again), so a bad URL is named together with
        # every other bad field instead of only once they are fixed.
        url = self.cleaned_data["webhook_url"].strip()
        if url:
            try:
                webhook_url_check(url)
            except InvalidInput as exc:
                raise forms.ValidationError(exc.extra["fields"]["webhook_url"]) from None
        return url


class SendTestForm(forms.Form):
    email = forms.EmailField(
        label="Send to (email of an enrolled user)",
        error_messages={"required": "Enter the email of a user enrolled in this app."},
    )
    title = forms.CharField(label="Title", max_length=256, initial="Test notification")
    body = forms.CharField(
        label="Body",
        max_length=4096,
        initial="Sent from the Keymaster Console.",
        # No maxlength: a counter (byte-counter.js) shows the size instead of cutting the text;
        # what providers accept is checked when it is sent (push.services.limits).
        widget=forms.Textarea(attrs={"rows": 2, "data-byte-counter": "4096"}),
    )
    device = forms.UUIDField(required=False, widget=forms.HiddenInput)
    # A UTC field, labelled so: no script turns the browser's local time into an offset.
    send_at = forms.DateTimeField(
        label="Send at (UTC, optional)",
        required=False,
        help_text="Leave empty to send now. At most 30 days ahead; a past time sends now.",
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        error_messages={"invalid": "Enter a date and time in UTC, like 2026-12-24 08:00."},
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["body"].widget.attrs.pop("maxlength", None)

    def clean_send_at(self) -> datetime | None:
        """The UTC time given, or None for now (a past time, or within a second)."""
        send_at = self.cleaned_data["send_at"]
        if send_at is None:
            return None
        send_at = send_at.replace(tzinfo=UTC)
        now = timezone.now()
        if send_at > now + SCHEDULE_MAX:
            raise forms.ValidationError("Pick a time at most 30 days ahead.")
        return send_at if send_at > now + SEND_NOW_WITHIN else None


class FilterForm(forms.Form):
    """A list's filters from the query string: invalid ones are dropped, never a 500."""

    def filters(self) -> dict:
        """Return the valid filters (empty values left out)."""
        if not self.is_valid():
            return {}
        return {key: value for key, value in self.cleaned_data.items() if value}


class DeviceFilterForm(FilterForm):
    platform = forms.ChoiceField(
        label="Platform", required=False, choices=[("", "All platforms"), *Platform.choices]
    )
    email = forms.CharField(label="User email contains", required=False, max_length=254)


class NotificationFilterForm(FilterForm):
    notification_id = forms.UUIDField(label="Notification ID", required=False)
    email = forms.CharField(label="User email contains", required=False, max_length=254)
    status = forms.ChoiceField(
        label="Status",
        required=False,
        choices=[
            ("", "Any status"),
            ("scheduled", "Scheduled"),
            *NotificationStatus.choices,
        ],
    )
    broadcast = forms.UUIDField(label="Broadcast ID", required=False)
    since = forms.DateField(
        label="From (UTC)", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="To (UTC)", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )


class ReceiptFilterForm(FilterForm):
    status = forms.ChoiceField(
        label="Status", required=False, choices=[("", "Any status"), *ReceiptStatus.choices]
    )
    notification_id = forms.UUIDField(label="Notification ID", required=False)
    failing = forms.BooleanField(label="Failing now (being retried)", required=False)


class AuditFilterForm(FilterForm):
    actor = forms.CharField(label="Who (email contains)", required=False, max_length=254)
    action = forms.ChoiceField(label="What", required=False)

    def __init__(self, *args: object, actions: list[str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [("", "Any action"), *((a, a) for a in actions)]


class UserFilterForm(FilterForm):
    email = forms.CharField(label="Email contains", required=False, max_length=254)


class AppNameForm(forms.Form):
    name = forms.CharField(
        label="App name",
        max_length=200,
        error_messages={"required": "Enter a name for the app."},
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Enter a name for the app.")
        return name


MAX_EMAILS_AT_ONCE = 500


class EnrollForm(forms.Form):
    emails = forms.CharField(
        label="Email addresses",
        help_text="One or many: separate them with commas, spaces or new lines.",
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off"}),
        error_messages={"required": "Enter at least one email address."},
    )

    def clean_emails(self) -> list[str]:
        raw = self.cleaned_data["emails"].replace(",", " ").replace(";", " ").split()
        emails = list(dict.fromkeys(address.strip().lower() for address in raw))
        if len(emails) > MAX_EMAILS_AT_ONCE:
            raise forms.ValidationError(f"Enter at most {MAX_EMAILS_AT_ONCE} addresses at once.")
        bad = [address for address in emails if not _is_email(address)]
        if bad:
            raise forms.ValidationError(f"Not an email address: {', '.join(bad[:10])}.")
        return emails


class AdminAddForm(forms.Form):
    email = forms.EmailField(
        label="Email of the new admin",
        error_messages={"required": "Enter the email address of the person to add."},
    )


def _is_email(address: str) -> bool:
    try:
        forms.EmailField().clean(address)
    except forms.ValidationError:
        return False
    return True


class ServiceAccountForm(forms.Form):
    file = forms.FileField(
        label="Service account key file (JSON)",
        help_text="From Firebase console → Project settings → Service accounts.",
        error_messages={"required": "Choose the service account's JSON key file."},
    )

    def clean_file(self) -> str:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_SERVICE_ACCOUNT_BYTES:
            raise forms.ValidationError("That file is too large to be a service account key.")
        try:
            return upload.read().decode("utf-8")
        except UnicodeDecodeError:
            raise forms.ValidationError("That file is not a text (JSON) file.") from None


def add_service_errors(
    form: forms.Form, error: InvalidInput, renames: dict[str, str] | None = None
) -> None:
    """Show a service's field errors on the form's fields (unknown fields above the form)."""
    renames = renames or {}
    for name, messages in error.extra.get("fields", {}).items():
        field = renames.get(name, name)
        for message in messages:
            form.add_error(field if field in form.fields else None, message)


class AccountPasswordForm(PasswordChangeForm):
    """Django's password change, without grabbing focus on a page that is mostly about devices."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["old_password"].widget.attrs.pop("autofocus", None)
