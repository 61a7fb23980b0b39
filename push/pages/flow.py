"""Post/Redirect/Get for the Console's forms, and the paged lists' query strings.

A POST always answers with a redirect, so a reload never sends a form again. A form that
failed travels to the next GET in the session (its data and every error), where the page
shows it at the top of that form and console.js scrolls to it and focuses the first bad field.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.forms import Form, PasswordInput
from django.forms.utils import ErrorDict, ErrorList
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

from keymaster.crypto import decrypt, encrypt

PER_PAGE = 20
_FAILED_KEY = "console.failed.{name}"
_ONCE_KEY = "console.once.{name}"


def form_failed(request: HttpRequest, name: str, form: Form) -> None:
    """Keep a failed form for the next GET: never its files, passwords or CSRF token."""
    secret = {
        name for name, field in form.fields.items() if isinstance(field.widget, PasswordInput)
    }
    data = {
        key: form.data.getlist(key)
        for key in form.data
        if key != "csrfmiddlewaretoken" and key not in secret
    }
    errors = {field: list(messages) for field, messages in form.errors.items()}
    request.session[_FAILED_KEY.format(name=name)] = {"data": data, "errors": errors}


def form_for_get(request: HttpRequest, name: str, form_class: type[Form], **kwargs: Any) -> Form:
    """Return the form that failed on the last POST with its errors, or a fresh one."""
    failed = request.session.pop(_FAILED_KEY.format(name=name), None)
    if not failed:
        return form_class(**kwargs)
    kwargs.pop("initial", None)
    data = QueryDict(mutable=True)
    for key, values in failed["data"].items():
        data.setlist(key, values)
    form = form_class(data=data, **kwargs)
    # The stored errors are shown as they were (a service's errors cannot be re-derived here).
    form._errors = ErrorDict(
        {field: _error_list(form, field, messages) for field, messages in failed["errors"].items()}
    )
    return form


def _error_list(form: Form, field: str, messages: list[str]) -> ErrorList:
    if field in form.fields:
        return form.error_class(messages, renderer=form.renderer, field_id=form[field].auto_id)
    return form.error_class(messages, error_class="nonfield", renderer=form.renderer)


def show_once(request: HttpRequest, name: str, value: str) -> None:
    """Keep `value` (it may be a new secret) for the next GET only, encrypted at rest."""
    # Sessions are stored signed, not encrypted: a secret in one is a secret in a table.
    request.session[_ONCE_KEY.format(name=name)] = encrypt(value)


def take_once(request: HttpRequest, name: str) -> str | None:
    """Return what `show_once` kept, once."""
    kept = request.session.pop(_ONCE_KEY.format(name=name), None)
    return decrypt(kept) if kept else None


def page_of(request: HttpRequest, items: Any, per_page: int = PER_PAGE) -> Page:
    """Return the page of `items` the query string asks for (a bad number is the first)."""
    return Paginator(items, per_page).get_page(request.GET.get("page"))


def query_without_page(request: HttpRequest) -> str:
    """Return the query string minus `page`, for the pager's links to keep the filters."""
    return urlencode([(k, v) for k, v in request.GET.items() if k != "page" and v])


def list_context(request: HttpRequest, app: Any, tab: str, filters: Any, items: Any) -> dict:
    """The context every filtered, paged Console list shares (the app, its tab, the page)."""
    return {
        "app": app,
        "tab": tab,
        "filter_form": filters,
        "filtered": bool(filters.filters()),
        "page": page_of(request, items),
        "query": query_without_page(request),
    }


def redirect_to(view_name: str, app: Any, anchor: str = "") -> HttpResponse:
    """Redirect to one of the app's Console pages, at `anchor` (the form that was sent) if given."""
    return redirect(reverse(view_name, args=[app.pk]) + (f"#{anchor}" if anchor else ""))


def redirect_back(request: HttpRequest, app: Any, fallback: str) -> HttpResponse:
    """Redirect to the POST's `back` page if it is one of this app's, else to `fallback`."""
    back = request.POST.get("back", "")
    if back.startswith(reverse("console-app", args=[app.pk])):
        return redirect(back)
    return redirect(fallback, app.pk)
