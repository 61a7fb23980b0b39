"""The Console's and the Account page's forms: shape checks here, rules in the services."""

from __future__ import annotations

from django import forms

from keymaster.errors import InvalidInput
from push.cors import origins_validate
from push.models import Platform

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

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["body"].widget.attrs.pop("maxlength", None)


class DeviceFilterForm(forms.Form):
    platform = forms.ChoiceField(
        label="Platform", required=False, choices=[("", "All platforms"), *Platform.choices]
    )
    email = forms.CharField(label="User email contains", required=False, max_length=254)

    def filters(self) -> dict[str, str]:
        """Return the valid filters, or none when the query string is malformed."""
        if not self.is_valid():
            return {"platform": "", "email": ""}
        return {"platform": self.cleaned_data["platform"], "email": self.cleaned_data["email"]}


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
